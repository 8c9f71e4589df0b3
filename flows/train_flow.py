"""TrainFlow: labelled text in, a fine-tuned classifier out.

    python flows/train_flow.py run                                    # embedded sample, CPU
    python flows/train_flow.py --config-value config 'data=sst2' run  # any config override
    python flows/train_flow.py run --with kubernetes                  # GPU pods, gs:// artifacts
    python flows/train_flow.py --branch exp run                       # @project branch test.exp

Every run is on a Metaflow @project branch (`user.<you>` by default, `--branch X`, `--production`);
registered names and artifact roots follow it (lib/textclf/branches.py).

Steps import the library inside their bodies: each Metaflow task is a fresh process, and
importing torch, transformers and Dask for steps that do not need them costs seconds.
"""
from metaflow import Config, FlowSpec, Parameter, card, current, exit_hook, parallel, project, resources, retry, step

from textclf_steps import (name_single_node_gang, retrained_by_monitor, run_config, settings, side_by_side,
                           textclf_steps)


@project(name="textclf")
@textclf_steps
@retrained_by_monitor
@exit_hook(on_error=["textclf.registry.tracking.end_stopped_run"])  # an interrupted run's MLflow run ends KILLED
class TrainFlow(FlowSpec):
    config = Config("config", default_value="", parser="textclf.config.parse",
                    help="YAML mapping, YAML list or 'key=value ...' Hydra overrides of config/config.yaml")
    retrain_data = Parameter("retrain_data", default="",
                             help="JSON of data.* keys that replace the configured data: a retraining request "
                                  "(MonitorFlow's event, when deployed)")
    requested_by = Parameter("requested_by", default="",
                             help="the MonitorFlow run that asked for this retraining (set by MonitorFlow)")

    @step
    def start(self):
        """Resolve the config once; every step and the record of this run use this snapshot."""
        import json

        from textclf.data.sources import check_sources
        from textclf.monitoring.retraining import with_data
        from textclf.registry.golden import check_golden
        from textclf.registry.naming import data_task, registry_name
        from textclf.registry.tracking import start_run
        from textclf.training.launcher import run_paths

        self.cfg = run_config(self)
        if self.retrain_data:
            self.cfg = with_data(self.cfg, json.loads(self.retrain_data))
        found = check_sources(settings(self).data)  # seconds: a file that cannot work stops the run here
        check_golden(settings(self).registry, settings(self).data)  # and so does a golden set that cannot
        name, why = registry_name(settings(self).registry, data_task(settings(self).data, found), self.cfg["branch"])
        self.cfg["registry"]["model_name"] = name  # a champion of another task stops the run now, not after training
        print(f"registers as {name} ({why}; @project branch {self.cfg['branch']})")
        self.paths = run_paths(settings(self), "TrainFlow", current.origin_run_id or current.run_id)
        self.mlflow_run_id = start_run(self.cfg, f"{current.flow_name}/{current.run_id}", self.requested_by)
        print(f"artifacts under {self.paths['root']}; MLflow run {self.mlflow_run_id}")
        self.next(self.preprocess)

    @retry(times=2)
    @resources(cpu=config.data.dask.worker_cpu, memory=8000)
    @card(type="blank", id="data")
    @step
    def preprocess(self):
        """Dask: validate, clean, dedupe, split, tokenize -> Parquet shards + manifest; what it
        decided about the rows, in the output and the card."""
        from textclf.data.preprocess import preprocess
        from textclf.data.summary import summary_card, summary_text

        cfg = settings(self)
        self.manifest = preprocess(cfg, self.paths["data"])
        print(summary_text(self.manifest, cfg.data.min_count))
        current.card["data"].extend(summary_card(self.manifest, cfg.data.min_count))
        self.data_fingerprint = self.manifest["fingerprint"]["sha256"]
        self.next(self.train, num_parallel=self.config.train.resources.num_nodes)

    @retry(times=2)  # a preempted gang starts again from the newest checkpoint on durable storage
    @resources(gpu=config.train.resources.gpu, cpu=config.train.resources.cpu, memory=config.train.resources.memory)
    @parallel
    @step
    def train(self):
        """torchrun on every node of the @parallel gang; node 0 reports, and its rank 0 scores val and
        test once (stored beside the model, scores/*.parquet) and profiles them for drift monitoring."""
        from textclf.training.launcher import train_model

        self.training = train_model(settings(self), self.manifest, self.paths,
                                    nnodes=current.parallel.num_nodes, node_rank=current.parallel.node_index,
                                    master_addr=current.parallel.main_ip, mlflow_run_id=self.mlflow_run_id,
                                    concurrent=side_by_side(current.parallel.num_nodes), profile=True)
        name_single_node_gang(self)
        self.next(self.join_train)

    @retry(times=2)
    @step
    def join_train(self, inputs):
        self.training = next(i.training for i in inputs if i.training)
        self.merge_artifacts(inputs, exclude=["training"])
        self.model_uri = self.paths["model"]  # with its stored scores and drift profile (the train step's)
        self.next(self.evaluate)

    @retry(times=2)
    @resources(gpu=config.scoring.gpu, cpu=config.scoring.cpu, memory=config.scoring.memory)
    @card(type="blank", id="evaluation", options={"title": "Evaluation notebooks"})
    @step
    def evaluate(self):
        """Papermill runs the evaluation, error-analysis and data notebooks on this run; the
        evaluate notebook's metrics.json is the test metrics, and the HTML pages fill the card."""
        from textclf.evaluation.notebooks import card_components, evaluate_run
        from textclf.storage import join

        self.test_metrics, self.reports, pages = evaluate_run(
            self.paths["root"], run_id=f"{current.flow_name}/{current.run_id}", model_uri=self.model_uri,
            data_uri=self.paths["data"], log_uri=join(self.paths["logs"], "metrics.jsonl"))
        current.card["evaluation"].extend(card_components(self.test_metrics, pages))
        self.next(self.register)

    @resources(gpu=config.scoring.gpu, cpu=config.scoring.cpu, memory=config.scoring.memory)
    @step
    def register(self):  # no @retry: a second attempt could register the model twice
        """MLflow: log what the run made, register a version, and let the gate pick the alias."""
        from textclf.registry.gate import register
        from textclf.registry.tracking import log_evaluation, log_training, tag_data

        run_id = self.mlflow_run_id
        tag_data(self.cfg, run_id, self.manifest)
        log_training(self.cfg, run_id, self.training)
        log_evaluation(self.cfg, run_id, self.test_metrics, self.reports)
        self.registration = register(self.cfg, run_id, self.model_uri, self.manifest,
                                     f"{current.flow_name}/{current.run_id}")
        self.next(self.end)

    @retry(times=2)
    @card(type="blank", id="summary")
    @step
    def end(self):
        """Where the model is, how good it is, and where it came from."""
        from textclf.registry.lineage import lineage, summary_card

        name, version = self.registration["model_name"], self.registration["version"]
        self.lineage = lineage(f"models:/{name}/{version}", self.cfg["registry"]["tracking_uri"])
        current.card["summary"].extend(summary_card(self.lineage, self.test_metrics, self.registration))
        print(f"test metrics: {self.test_metrics}")
        print(f"model: {self.model_uri}")
        print(f"registered: models:/{name}/{version} ({self.registration['alias']}: {self.registration['reason']})")


if __name__ == "__main__":
    TrainFlow()
