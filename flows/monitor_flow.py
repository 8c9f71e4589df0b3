"""MonitorFlow: is the champion still good enough? If not, retrain it on a new data version.

    python flows/monitor_flow.py run                                          # once, locally
    python flows/monitor_flow.py --config-value config 'monitor.batch=new.csv' run
    python flows/monitor_flow.py argo-workflows create                        # daily (monitor.schedule)

Locally, cron does the scheduling (`0 6 * * * cd /path/to/textclf && .venv/bin/python
flows/monitor_flow.py run`). The registry gate of the TrainFlow it triggers decides whether the
new model becomes `champion`; a running server picks that up by itself.
"""
from metaflow import Config, FlowSpec, card, config_expr, current, schedule, step


@schedule(cron=config_expr("config.monitor.schedule"))
class MonitorFlow(FlowSpec):
    config = Config("config", default_value="", parser="textclf.config.parse",
                    help="YAML mapping, YAML list or 'key=value ...' Hydra overrides of config/config.yaml")

    @step
    def start(self):
        """Resolve the config and the champion the server answers with."""
        from textclf.registry import resolve_model

        self.cfg = self.config.to_dict()
        champion = resolve_model(self.cfg["serve"]["model"])
        self.champion = {"uri": champion.uri, "name": champion.name, "version": champion.version,
                         "run_id": champion.run_id, "created": champion.created}
        print(f"champion: {champion.uri} -> version {champion.version} of {champion.run_id}")
        self.next(self.assess)

    @card(type="blank", id="monitor")
    @step
    def assess(self):
        """Performance on fresh labels, drift against the training profile, and age."""
        from datetime import datetime

        from textclf.config import from_dict
        from textclf.feedback import read_feedback
        from textclf.monitor import assess, drift_figure, fresh_labels, load_profile, report_card
        from textclf.predict import Predictor
        from textclf.registry import resolve_model

        cfg = from_dict(self.cfg)
        model = resolve_model(self.champion["uri"])
        self.fresh = fresh_labels(cfg.monitor, cfg.data, read_feedback(cfg.serve.feedback_root))
        predictor = Predictor(model.path)
        self.label_set = predictor.labels
        profile, vectors = load_profile(model.path)
        assessment, series = assess(cfg.monitor, predictor, profile, vectors, self.fresh,
                                    datetime.fromisoformat(self.champion["created"]))
        self.assessment = assessment.to_dict()
        print(self.assessment["summary"])
        report_card(current.card["monitor"], self.assessment, self.champion, drift_figure(series))
        self.next(self.retrain)

    @step
    def retrain(self):
        """Fold accepted feedback into a new data version and run TrainFlow on it."""
        from textclf.config import PROJECT_ROOT, from_dict
        from textclf.monitor import (accepted_feedback, new_data_version, next_training_config, previous_rows,
                                     trigger_training)
        from textclf.runs import run_outputs

        self.version, self.triggered = None, None
        if not (self.assessment["retrain"] and self.cfg["monitor"]["retrain"]):
            self.next(self.end)
            return
        champion_cfg = run_outputs(self.champion["run_id"]).cfg
        data_cfg = from_dict(champion_cfg).data
        rows, self.feedback_report = accepted_feedback(self.fresh, self.label_set, data_cfg.multi_label)
        previous, kept = previous_rows(data_cfg)
        self.version = new_data_version(previous, rows, "text", "label", data_cfg.multi_label,
                                        data_cfg.label_delimiter, self.cfg["artifact_root"])
        print(f"new data version {self.version['sha256'][:16]}: {self.version['previous_rows']} earlier rows "
              f"+ {self.version['added_rows']} new ({self.feedback_report})")
        self.triggered = trigger_training(next_training_config(champion_cfg, self.version, kept),
                                          str(PROJECT_ROOT / "flows" / "train_flow.py"))
        current.run.add_tag(f"retrained:{self.triggered}")
        self.next(self.end)

    @step
    def end(self):
        print(self.assessment["summary"])
        if self.triggered:
            print(f"retrained: {self.triggered}")


if __name__ == "__main__":
    MonitorFlow()
