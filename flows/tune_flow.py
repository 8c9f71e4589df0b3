"""TuneFlow: recipes compared on validation by an Optuna search, the winner scored once on test.

    python flows/tune_flow.py run                                                   # config/tune/default.yaml
    python flows/tune_flow.py --config-value config 'tune.sampler=random tune.rounds=3' run
    python flows/tune_flow.py resume                                                # after a failed trial
    python flows/tune_flow.py run --with kubernetes                                 # a pod per trial

The data is preprocessed once, and its test split sealed: trials and folds get a manifest without
it (`textclf.tuning.sealing`). Then `tune.trials_per_round` branches run side by side; each runs
one trial per round (ask -> train `tune.seeds` times -> tell the mean validation score) and loops
to the next round while the budget (`tune.max_trials`, `tune.max_minutes`) lasts. Every ask sees
all trials told before it. The search space is `tune.space` (single keys) and `tune.recipes`
(named bundles of keys, one `recipe` dimension). On a local run the branches share this machine's
cores: each trains with cores / branches threads (a pod per trial under Kubernetes keeps its own
`@resources`), as more threads than cores cost far more than a fair share (`bench/tune.py`). The
best parameters become `best.yaml`, a config TrainFlow takes unchanged:

    python flows/train_flow.py --config-value config "$(cat <artifact_root>/TuneFlow/<run>/best.yaml)" run

With `tune.kfold=k` the best config is then cross-validated over k folds (mean ± std). Only after
the choice, `final` takes the winner once per `tune.final_seeds` seed (the seeds its trial trained
are scored as they are, the others trained and selected on validation as every trial was), and
scores the test split once per seed: the card, the MLflow run and best.yaml's
header report validation and test as mean ± std over those seeds, with test's 95 % t-interval.
"""
from metaflow import Config, FlowSpec, card, current, project, resources, step

from textclf_steps import run_config, settings, side_by_side, textclf_steps


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
        from textclf.tuning.sealing import sealed

        self.manifest = sealed(preprocess(settings(self), self.paths["data"]))
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
        result = run_trial(self.cfg, self.study, self.manifest, self.run_key, slot, self.mlflow_run,
                           concurrent=side_by_side(len(self.branches)))
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
        self.next({"yes": self.folds, "no": self.chosen}, condition="validate")

    @step
    def folds(self):
        self.fold_ids = list(range(self.config.tune.kfold))
        self.next(self.fold, foreach="fold_ids")

    @resources(gpu=config.train.resources.gpu, cpu=config.train.resources.cpu, memory=config.train.resources.memory)
    @step
    def fold(self):
        """The best config trained on k-1 folds, validated on the held-out one."""
        from textclf.tuning.kfold import fold_manifest
        from textclf.tuning.seeds import train_seed

        k, seed = len(self.fold_ids), self.cfg["train"]["seed"]  # the folds are the data's, not a candidate's
        manifest = fold_manifest(self.manifest, k, self.input, self.paths["data"], seed)
        record = train_seed(self.cfg, self.best["params"], manifest, self.run_key, f"fold-{self.input}", 0,
                            side_by_side(k))
        self.fold_score = record["best_val"]
        self.next(self.fold_join)

    @step
    def fold_join(self, inputs):
        from textclf.tuning.seeds import spread

        self.kfold = spread([i.fold_score for i in inputs])
        self.merge_artifacts(inputs, exclude=["fold_score"])
        print(f"{self.kfold['n']}-fold: {self.kfold['mean']:.4f} ± {self.kfold['std']:.4f}")
        self.next(self.chosen)

    @step
    def chosen(self):
        """The choice is made on validation; test is read next, by `final` alone, or never (tune.final_seeds=0)."""
        self.score_test = "yes" if self.config.tune.final_seeds else "no"
        self.next({"yes": self.finals, "no": self.report}, condition="score_test")

    @step
    def finals(self):
        """One branch per final seed."""
        self.final_ids = list(range(self.config.tune.final_seeds))
        self.next(self.final, foreach="final_ids")

    @resources(gpu=config.train.resources.gpu, cpu=config.train.resources.cpu, memory=config.train.resources.memory)
    @step
    def final(self):
        """The winner with one seed: trained (unless its trial trained this seed), selected on validation,
        then scored once on the unsealed test split."""
        from textclf.tuning.final import final_run, trained_seeds
        from textclf.tuning.sealing import unsealed

        trained = trained_seeds(self.results, self.best["number"]).get(self.input)
        self.final_seed = final_run(self.cfg, self.best["params"], unsealed(self.manifest), self.run_key, self.input,
                                    side_by_side(len(self.final_ids)), trained)
        seed = self.final_seed
        origin = "the trial's model" if seed["reused"] else "trained"
        print(f"seed {seed['seed']} ({origin}): validation {seed['val']:.4f}, test {seed['test']:.4f}")
        self.next(self.final_join)

    @step
    def final_join(self, inputs):
        """The winner's validation and test over the seeds, into best.yaml's header."""
        from textclf.tuning.final import describe, final_summary
        from textclf.tuning.study import best_config, write_best_config

        self.final_result = final_summary([i.final_seed for i in inputs])
        self.merge_artifacts(inputs, exclude=["final_seed"])
        self.best_config = best_config(self.cfg, self.best["params"], describe(self.final_result))
        write_best_config(self.best_config, self.paths["root"])
        print(describe(self.final_result))
        self.next(self.report)

    @card(type="blank", id="tune")
    @step
    def report(self):
        """Card and MLflow: history, importances, parallel coordinates, the trials, the winner on test,
        the best config."""
        from textclf.tuning.report import report
        from textclf.tuning.space import search_space
        from textclf.tuning.study import load_study

        cfg = settings(self)
        self.kfold, self.final_result = getattr(self, "kfold", None), getattr(self, "final_result", None)
        report(current.card["tune"], load_study(self.study, cfg.tune, search_space(cfg)), cfg, self.run_key, self.best,
               self.best_config, self.best_config_uri, self.kfold, self.final_result, self.mlflow_run)
        self.next(self.end)

    @step
    def end(self):
        from textclf.tuning.final import describe

        print(f"best: {self.best}")
        if self.final_result:
            print(describe(self.final_result))
        print(f"best config: {self.best_config_uri}")


if __name__ == "__main__":
    TuneFlow()
