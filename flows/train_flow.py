"""TrainFlow: labelled text in, a fine-tuned classifier out.

    python flows/train_flow.py run                                    # embedded sample, CPU
    python flows/train_flow.py --config-value config 'data=sst2' run  # any config override
    python flows/train_flow.py run --with kubernetes                  # GPU pods, gs:// artifacts

Steps import the library inside their bodies: each Metaflow task is a fresh process, and
importing torch, transformers and Dask for steps that do not need them costs seconds.
"""
from metaflow import Config, FlowSpec, card, current, parallel, resources, step

from textclf_steps import settings, textclf_steps


@textclf_steps
class TrainFlow(FlowSpec):
    config = Config("config", default_value="", parser="textclf.config.parse",
                    help="YAML mapping, YAML list or 'key=value ...' Hydra overrides of config/config.yaml")

    @step
    def start(self):
        """Resolve the config once; every step and the record of this run use this snapshot."""
        from textclf.registry.tracking import start_run
        from textclf.training.launcher import run_paths

        self.cfg = self.config.to_dict()
        self.paths = run_paths(settings(self), "TrainFlow", current.origin_run_id or current.run_id)
        self.mlflow_run_id = start_run(self.cfg, f"{current.flow_name}/{current.run_id}")
        print(f"artifacts under {self.paths['root']}; MLflow run {self.mlflow_run_id}")
        self.next(self.preprocess)

    @resources(cpu=config.data.dask.worker_cpu, memory=8000)
    @step
    def preprocess(self):
        """Dask: validate, clean, dedupe, split, tokenize -> Parquet shards + manifest."""
        from textclf.data.preprocess import preprocess

        self.manifest = preprocess(settings(self), self.paths["data"])
        self.data_fingerprint = self.manifest["fingerprint"]["sha256"]
        self.next(self.train, num_parallel=self.config.train.resources.num_nodes)

    @resources(gpu=config.train.resources.gpu, cpu=config.train.resources.cpu, memory=config.train.resources.memory)
    @parallel
    @step
    def train(self):
        """torchrun on every node of the @parallel gang; node 0 reports."""
        from textclf.training.launcher import train_model

        self.training = train_model(settings(self), self.manifest, self.paths,
                                    nnodes=current.parallel.num_nodes, node_rank=current.parallel.node_index,
                                    master_addr=current.parallel.main_ip, mlflow_run_id=self.mlflow_run_id)
        self.next(self.join_train)

    @step
    def join_train(self, inputs):
        from textclf.monitoring.profile import save_profile

        self.training = next(i.training for i in inputs if i.training)
        self.merge_artifacts(inputs, exclude=["training"])
        self.model_uri = self.paths["model"]
        save_profile(self.model_uri, self.manifest)  # the reference MonitorFlow measures drift against
        self.next(self.evaluate)

    @card(type="blank", id="evaluation", options={"title": "Evaluation notebooks"})
    @step
    def evaluate(self):
        """Papermill runs the evaluation, error-analysis and data notebooks on this run; the
        evaluate notebook's metrics.json is the test metrics, and the HTML pages fill the card."""
        from textclf.evaluation.notebooks import card_components, evaluate_run

        self.test_metrics, self.reports, pages = evaluate_run(f"{current.flow_name}/{current.run_id}", self.paths["root"])
        current.card["evaluation"].extend(card_components(self.test_metrics, pages))
        self.next(self.register)

    @step
    def register(self):
        """MLflow: log what the run made, register a version, and let the gate pick the alias."""
        from textclf.registry.gate import register
        from textclf.registry.tracking import log_evaluation, log_training, tag_data

        run_id = self.mlflow_run_id
        tag_data(self.cfg, run_id, self.manifest)
        log_training(self.cfg, run_id, self.training)
        log_evaluation(self.cfg, run_id, self.test_metrics, self.reports)
        self.registration = register(self.cfg, run_id, self.model_uri, self.manifest,
                                     f"{current.flow_name}/{current.run_id}")
        current.run.add_tags([f"mlflow_run:{run_id}", f"model_version:{self.registration['version']}",
                              f"gate:{self.registration['alias']}"])
        self.next(self.end)

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
