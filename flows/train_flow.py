"""TrainFlow: labelled text in, a fine-tuned classifier out.

    python flows/train_flow.py run                                    # embedded sample, CPU
    python flows/train_flow.py --config-value config 'data=sst2' run  # any config override
    python flows/train_flow.py run --with kubernetes                  # GPU pods, gs:// artifacts

Steps import the library inside their bodies: each Metaflow task is a fresh process, and
importing torch, transformers and Dask for steps that do not need them costs seconds.
"""
from metaflow import Config, FlowSpec, current, parallel, resources, step


class TrainFlow(FlowSpec):
    config = Config("config", default_value="", parser="textclf.config.parse",
                    help="YAML mapping, YAML list or 'key=value ...' Hydra overrides of config/config.yaml")

    @step
    def start(self):
        """Resolve the config once; every step and the record of this run use this snapshot."""
        from textclf.config import from_dict
        from textclf.training import run_paths

        self.cfg = self.config.to_dict()
        self.paths = run_paths(from_dict(self.cfg), "TrainFlow", current.origin_run_id or current.run_id)
        print(f"artifacts under {self.paths['root']}")
        self.next(self.preprocess)

    @resources(cpu=config.data.dask.worker_cpu, memory=8000)
    @step
    def preprocess(self):
        """Dask: validate, clean, dedupe, split, tokenize -> Parquet shards + manifest."""
        from textclf.config import from_dict
        from textclf.preprocess import preprocess

        self.manifest = preprocess(from_dict(self.cfg), self.paths["data"])
        self.data_fingerprint = self.manifest["fingerprint"]["sha256"]
        self.next(self.train, num_parallel=self.config.train.resources.num_nodes)

    @resources(gpu=config.train.resources.gpu, cpu=config.train.resources.cpu, memory=config.train.resources.memory)
    @parallel
    @step
    def train(self):
        """torchrun on every node of the @parallel gang; node 0 reports."""
        from textclf.config import from_dict
        from textclf.training import train_model

        self.training = train_model(from_dict(self.cfg), self.manifest, self.paths,
                                    nnodes=current.parallel.num_nodes, node_rank=current.parallel.node_index,
                                    master_addr=current.parallel.main_ip)
        self.next(self.join_train)

    @step
    def join_train(self, inputs):
        from textclf.monitor import save_profile

        self.training = next(i.training for i in inputs if i.training)
        self.merge_artifacts(inputs, exclude=["training"])
        self.model_uri = self.paths["model"]
        save_profile(self.model_uri, self.manifest)  # the reference MonitorFlow measures drift against
        self.next(self.evaluate)

    @step
    def evaluate(self):
        """Test-split metrics of the selected checkpoint."""
        from textclf.evaluation import test_metrics

        self.test_metrics = test_metrics(self.model_uri, self.manifest["shards"]["test"])
        self.next(self.register)

    @step
    def register(self):
        """MLflow registry and the champion / challenger gate (see the registry issue)."""
        self.next(self.end)

    @step
    def end(self):
        print(f"test metrics: {self.test_metrics}")
        print(f"model: {self.model_uri}")


if __name__ == "__main__":
    TrainFlow()
