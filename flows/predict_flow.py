"""PredictFlow: a model's predictions for every text of a big file, one shard per task.

    python flows/predict_flow.py run --source texts.csv --output preds/          # serve.model, locally
    python flows/predict_flow.py --config-value config 'predict.shard_rows=100000 predict.resources.gpu=1' \
        run --model models:/textclf/3 --source gs://b/texts.parquet --output gs://b/preds --with kubernetes
    python flows/predict_flow.py resume                                          # after a failure

`<output>` gets `part-00000.parquet`, ... (one per shard, in input order, each published whole) and
`_SUCCESS`, the manifest (rows, parts, model version, seconds, rows/s) written last. A shard whose
part is already there for the same input rows and model version is not scored again, so `resume`
and a rerun into the same output only score what is missing; the `scored` and `reused` artifacts
say which shards were which. For one file on one machine, `textclf predict` does the same.
"""
from metaflow import Config, FlowSpec, Parameter, current, project, resources, retry, step

from textclf_steps import run_config, settings, textclf_steps


@project(name="textclf")
@textclf_steps
class PredictFlow(FlowSpec):
    config = Config("config", default_value="", parser="textclf.config.parse",
                    help="YAML mapping, YAML list or 'key=value ...' Hydra overrides of config/config.yaml")
    model = Parameter("model", default="", help="models:/<name>@<alias>, models:/<name>/<version>, a TrainFlow "
                                                "run id or a model folder (default: serve.model)")
    source = Parameter("source", required=True, help="the texts: a CSV / TSV / JSONL / Parquet file, local or gs://")
    output = Parameter("output", required=True, help="folder or gs:// prefix for the parts and _SUCCESS")
    text_column = Parameter("text_column", default="", help="the column of texts (default: data.text_column)")

    @step
    def start(self):
        """Pin the model version once, check the file as the data intake does, and cut it into shards."""
        import time

        from textclf.data.texts import open_texts, plan_shards
        from textclf.serve.batch_scoring import pin_model

        self.cfg, self.started = run_config(self), time.time()
        cfg = settings(self)
        self.pinned = pin_model(self.model or cfg.serve.model, cfg.registry.tracking_uri)
        self.texts = open_texts(self.source, self.text_column or cfg.data.text_column, cfg.data.format)
        self.shards = plan_shards(self.texts, cfg.predict.shard_rows)
        print(f"model {self.pinned['uri']} -> {self.pinned['pinned']}; {sum(s.rows for s in self.shards):,} rows "
              f"in {len(self.shards)} shards")
        self.next(self.score, foreach="shards")

    @retry(times=2)
    @resources(gpu=config.predict.resources.gpu, cpu=config.predict.resources.cpu,
               memory=config.predict.resources.memory)
    @step
    def score(self):
        """One shard into its part, unless that part is already there."""
        from textclf.serve.batch_scoring import score_shard

        self.part = score_shard(self.texts, self.input, self.pinned, self.output, settings(self), current.pathspec)
        self.next(self.join)

    @retry(times=2)
    @step
    def join(self, inputs):
        """The manifest, written last: the output is complete once `_SUCCESS` is there."""
        from textclf.serve.batch_scoring import finish

        self.merge_artifacts(inputs, exclude=["part"])
        self.manifest = finish(self.output, self.texts, self.pinned, [i.part for i in inputs], current.run_id,
                               self.started)
        self.scored, self.reused = self.manifest["scored"], self.manifest["reused"]
        self.next(self.end)

    @step
    def end(self):
        from textclf.serve.batch_scoring import summary

        print(summary(self.manifest))


if __name__ == "__main__":
    PredictFlow()
