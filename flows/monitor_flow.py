"""MonitorFlow: is the champion still good enough? If not, retrain it on a new data version.

    python flows/monitor_flow.py run                                          # once, locally
    python flows/monitor_flow.py --config-value config 'monitor.batch=new.csv' run
    python flows/monitor_flow.py --production argo-workflows create           # daily (monitor.schedule)

Locally, cron does the scheduling (`0 6 * * * cd /path/to/textclf && .venv/bin/python
flows/monitor_flow.py run`) and a retrain runs TrainFlow in-process. Deployed on Argo Workflows,
a retrain publishes the Argo Event `monitor.retrain_event` instead, namespaced by its @project
branch: the TrainFlow deployment of the same branch (`argo-workflows create` with Argo Events
configured) starts on its own GPU pods with the new data version as its `retrain_data` parameter
and this run as its `requested_by`. Run locally, TrainFlow runs on this run's branch, tagged
`retrained_by:<this run>` and given the same `requested_by`. The registry gate of that TrainFlow decides whether the
new model becomes `champion`; a running server picks that up by itself.

Run from the project (a DVC repo with a default remote), a retrain's new data version is
DVC-tracked, pushed, and committed on the checked-out branch (its .dvc file and .gitignore alone);
elsewhere, or with `monitor.dvc=false`, it is a plain CSV under the artifact root.
"""
from metaflow import Config, FlowSpec, card, config_expr, current, project, resources, schedule, step

from textclf_steps import run_config, settings, textclf_steps


@project(name="textclf")
@textclf_steps
@schedule(cron=config_expr("config.monitor.schedule"))
class MonitorFlow(FlowSpec):
    config = Config("config", default_value="", parser="textclf.config.parse",
                    help="YAML mapping, YAML list or 'key=value ...' Hydra overrides of config/config.yaml")

    @step
    def start(self):
        """Resolve the config and the champion the server answers with (`serve.model`, as this
        run's @project branch names it: on `--branch x`, the champion of TrainFlow's `--branch x`)."""
        from textclf.registry.naming import registered_uri
        from textclf.registry.resolution import resolve_model

        self.cfg = run_config(self)
        cfg = settings(self)
        champion = resolve_model(registered_uri(cfg.serve.model, cfg.branch, cfg.registry.tracking_uri),
                                 cfg.registry.tracking_uri, download=False)
        # The version the alias names now: later steps assess that one, even if the alias moves meanwhile.
        self.champion = {"uri": champion.uri, "pinned": champion.pinned, "name": champion.name, "version": champion.version,
                         "run_id": champion.run_id, "mlflow_run": champion.lineage.get("mlflow_run"),
                         "created": champion.created}
        print(f"champion: {champion.uri} -> version {champion.version} of {champion.run_id}")
        self.next(self.assess)

    @resources(gpu=config.scoring.gpu, cpu=config.scoring.cpu, memory=config.scoring.memory)
    @card(type="blank", id="monitor")
    @step
    def assess(self):
        """Quality on unbiased fresh labels, drift of the logged traffic against the training
        profile, and age."""
        from datetime import datetime

        from textclf.model.predictor import Predictor
        from textclf.monitoring.assessment import assess, drift_figure, fresh_labels, report_card, review_rate
        from textclf.monitoring.feedback import read_feedback
        from textclf.monitoring.predictions import recent_traffic
        from textclf.evaluation.profile import load_profile
        from textclf.registry.resolution import resolve_model

        cfg = settings(self)
        model = resolve_model(self.champion["pinned"], cfg.registry.tracking_uri)
        self.fresh = fresh_labels(cfg.monitor, cfg.data, read_feedback(cfg.serve.feedback_root))
        traffic = recent_traffic(cfg.serve, self.champion["name"], cfg.monitor)
        predictor = Predictor(model.path)
        self.label_set = predictor.labels
        profile, vectors = load_profile(model.path)
        assessment, series = assess(cfg.monitor, predictor, profile, vectors, self.fresh[self.fresh["unbiased"]],
                                    traffic, review_rate(traffic, self.fresh),
                                    datetime.fromisoformat(self.champion["created"]))
        self.assessment = assessment.to_dict()
        print(self.assessment["summary"])
        report_card(current.card["monitor"], self.assessment, self.champion, drift_figure(series))
        self.next(self.retrain)

    @step
    def retrain(self):
        """Fold accepted feedback into a new data version and have TrainFlow train on it: deployed,
        by an Argo Event that starts the TrainFlow deployment on its own pods; locally, in-process."""
        from textclf.branches import artifact_root
        from textclf.config import PROJECT_ROOT
        from textclf.monitoring.retraining import deployed, plan_retraining, request_retraining, train_locally

        self.version, self.triggered = None, None
        if not (self.assessment["retrain"] and self.cfg["monitor"]["retrain"]):
            self.next(self.end)
            return
        cfg = settings(self)
        plan = plan_retraining(self.champion, cfg.registry.tracking_uri, self.fresh, self.label_set,
                               artifact_root(cfg.artifact_root, cfg.branch), dvc=cfg.monitor.dvc)
        self.version, self.feedback_report = plan["version"], plan["feedback"]
        print(f"new data version {self.version['sha256'][:16]}: {self.version['previous_rows']} earlier rows "
              f"+ {self.version['added_rows']} new ({self.feedback_report})\n{plan['versioning']}: "
              f"{self.version['uri']}" + (f" at {self.version['revision']}" if self.version["revision"] else ""))
        me = f"{current.flow_name}/{current.run_id}"
        if deployed():
            self.triggered = request_retraining(plan["data"], self.cfg["monitor"]["retrain_event"], requested_by=me)
        else:
            self.triggered = train_locally(plan["config"], str(PROJECT_ROOT / "flows" / "train_flow.py"),
                                           requested_by=me, branch=self.cfg["branch"])
        self.next(self.end)

    @step
    def end(self):
        print(self.assessment["summary"])
        if self.triggered:
            print(f"retrained: {self.triggered}")


if __name__ == "__main__":
    MonitorFlow()
