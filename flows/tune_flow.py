"""TuneFlow: an Optuna hyperparameter search, each trial a Metaflow task.

    python flows/tune_flow.py run                                                   # config/tune/default.yaml
    python flows/tune_flow.py --config-value config 'tune.sampler=random tune.rounds=3' run
    python flows/tune_flow.py resume                                                # after a failed trial
    python flows/tune_flow.py run --with kubernetes                                 # a pod per trial

The data is preprocessed once. Then `tune.trials_per_round` branches run side by side; each runs
one trial per round (ask -> train -> tell) and loops to the next round while the budget
(`tune.max_trials`, `tune.max_minutes`) lasts. Every ask sees all trials told before it. The best
parameters become `best.yaml`, a config TrainFlow takes unchanged:

    python flows/train_flow.py --config-value config "$(cat <artifact_root>/TuneFlow/<run>/best.yaml)" run

With `tune.kfold=k` the best config is then cross-validated over k folds (mean ± std).
"""
from metaflow import Config, FlowSpec, card, current, project, resources, step

from textclf_steps import run_config, settings, textclf_steps


@project(name="textclf")
@textclf_steps
class TuneFlow(FlowSpec):
    config = Config("config", default_value="", parser="textclf.config.parse",
                    help="YAML mapping, YAML list or 'key=value ...' Hydra overrides of config/config.yaml")

    @step
    def start(self):
        """Resolve the config, check the search space, open the study and its MLflow run."""
        import time

        from textclf.training.launcher import run_paths
        from textclf.tuning.space import check, search_space
        from textclf.tuning.study import load_study, study_ref
        from textclf.tuning.tracking import start_parent_run

        self.cfg = run_config(self)
        cfg = settings(self)
        check(cfg)
        self.run_key = current.origin_run_id or current.run_id
        self.paths = run_paths(cfg, "TuneFlow", self.run_key)
        self.study = study_ref(cfg, self.paths["root"], f"TuneFlow-{self.run_key}")
        load_study(self.study, cfg.tune, search_space(cfg))  # created here, before trials race to create it
        self.mlflow_run = start_parent_run(cfg, f"TuneFlow/{self.run_key}")
        self.started = time.time()
        print(f"study {self.study['name']} in {self.study['storage']}")
        self.next(self.preprocess)

    @resources(cpu=config.data.dask.worker_cpu, memory=8000)
    @step
    def preprocess(self):
        """Shards once, shared by every trial."""
        from textclf.data.preprocess import preprocess

        self.manifest = preprocess(settings(self), self.paths["data"])
        self.branches = list(range(min(self.config.tune.trials_per_round, self.config.tune.max_trials)))
        self.next(self.trial, foreach="branches")

    @resources(gpu=config.train.resources.gpu, cpu=config.train.resources.cpu, memory=config.train.resources.memory)
    @step
    def trial(self):
        """One trial: ask Optuna, train, tell; then the next round's trial while the budget lasts."""
        from textclf.tuning.study import has_budget, run_trial

        tune = settings(self).tune
        self.round = getattr(self, "round", -1) + 1
        slot = self.round * tune.trials_per_round + self.input
        result = run_trial(self.cfg, self.study, self.manifest, self.run_key, slot, self.mlflow_run)
        print(f"trial {result['number']}: {result['metric']}={result['value']:.4f}")
        self.results = getattr(self, "results", []) + [result]
        self.more = "yes" if has_budget(tune, slot + tune.trials_per_round, self.started) else "no"
        self.next({"yes": self.trial, "no": self.branch_done}, condition="more")

    @step
    def branch_done(self):
        self.next(self.collect)

    @step
    def collect(self, inputs):
        self.merge_artifacts(inputs, include=["cfg", "paths", "run_key", "study", "mlflow_run", "manifest"])
        self.results = sorted((r for i in inputs for r in i.results), key=lambda r: r["number"])
        self.next(self.best_trial)

    @step
    def best_trial(self):
        """The study's verdict: the best trial and its config file."""
        from textclf.tuning.study import best_config, close_study, write_best_config

        study = close_study(self.study, settings(self))
        self.best = {"number": study.best_trial.number, "value": study.best_value, "params": study.best_params}
        self.best_config = best_config(self.cfg, study.best_params)
        self.best_config_uri = write_best_config(self.best_config, self.paths["root"])
        print(f"best trial {self.best['number']}: {self.best['value']:.4f} {self.best['params']}")
        print(f"best config: {self.best_config_uri}")
        self.validate = "yes" if self.config.tune.kfold > 1 else "no"
        self.next({"yes": self.folds, "no": self.report}, condition="validate")

    @step
    def folds(self):
        self.fold_ids = list(range(self.config.tune.kfold))
        self.next(self.fold, foreach="fold_ids")

    @resources(gpu=config.train.resources.gpu, cpu=config.train.resources.cpu, memory=config.train.resources.memory)
    @step
    def fold(self):
        """The best config trained on k-1 folds, validated on the held-out one."""
        from textclf.config import from_dict
        from textclf.training.launcher import run_paths, train_model
        from textclf.tuning.kfold import fold_manifest
        from textclf.tuning.space import trial_config

        cfg = from_dict(trial_config(self.cfg, self.best["params"]))
        manifest = fold_manifest(self.manifest, len(self.fold_ids), self.input, self.paths["data"], cfg.train.seed)
        record = train_model(cfg, manifest, run_paths(cfg, "TuneFlow", f"{self.run_key}/fold-{self.input}"))
        self.fold_score = record["best_val"]
        self.next(self.fold_join)

    @step
    def fold_join(self, inputs):
        from textclf.tuning.kfold import fold_summary

        self.kfold = fold_summary([i.fold_score for i in inputs])
        self.merge_artifacts(inputs, exclude=["fold_score"])
        print(f"{self.kfold['folds']}-fold: {self.kfold['mean']:.4f} ± {self.kfold['std']:.4f}")
        self.next(self.report)

    @card(type="blank", id="tune")
    @step
    def report(self):
        """Card and MLflow: history, importances, parallel coordinates, the trials, the best config."""
        from textclf.tuning.report import report
        from textclf.tuning.space import search_space
        from textclf.tuning.study import load_study

        cfg = settings(self)
        self.kfold = getattr(self, "kfold", None)
        report(current.card["tune"], load_study(self.study, cfg.tune, search_space(cfg)), cfg, self.run_key, self.best,
               self.best_config, self.best_config_uri, self.kfold, self.mlflow_run)
        self.next(self.end)

    @step
    def end(self):
        print(f"best: {self.best}")
        print(f"best config: {self.best_config_uri}")


if __name__ == "__main__":
    TuneFlow()
