"""The winner scored once on test: the chosen config with each of `tune.final_seeds` seeds,
selected on validation as every trial was, and only then scored on the test split, which
no step reads before (`sealing`). What is reported: validation and test, each mean ± std over
the seeds, and test's 95 % t-interval; for a single-label model also test's expected calibration
error after temperature scaling and at T = 1, the calibration result a recipe is chosen with.

A seed the winning trial already trained (seed i < `tune.seeds`: the same config, the same seed)
is not trained again: its model is scored on test as it is. Training it twice would give the same
model at the cost of a training (6 to 12 minutes a seed for SST-2 on the 2-core CPU, in bf16)."""
from __future__ import annotations

from typing import Any

from textclf.evaluation.calibration import reliability, unscaled_ece
from textclf.evaluation.metrics import quick_metrics
from textclf.evaluation.scoring import load_predictor, score_split
from textclf.tuning.seeds import spread, train_seed


def trained_seeds(results: list[dict[str, Any]], number: int) -> dict[int, dict[str, Any]]:
    """The winning trial's trainings by seed index: seed, selection metric, validation score, model."""
    trial = next(r for r in results if r["number"] == number)
    return {i: {"seed": s["seed"], "metric": trial["metric"], "val": s["value"], "model": s["model"]}
            for i, s in enumerate(trial["seeds"])}


def final_run(cfg_dict: dict[str, Any], params: dict[str, Any], manifest: dict[str, Any], run_key: str,
              i: int, concurrent: int = 1, trained: dict[str, Any] | None = None) -> dict[str, Any]:
    """Seed i of the winner (`manifest`: unsealed): its validation score, then its one test score,
    by the metric training selected on. `trained`: the winning trial's own training with this seed
    (`trained_seeds`), scored instead of trained again. `concurrent`: seeds training side by side."""
    reused = trained is not None
    if not reused:
        record = train_seed(cfg_dict, params, manifest, run_key, "final", i, concurrent)
        trained = {"seed": record["seed"], "metric": record["selection_metric"], "val": record["best_val"],
                   "model": record["model"]}
    scored = score_split(load_predictor(trained["model"]), manifest["shards"]["test"])
    test = quick_metrics(scored.truth, scored.probs, scored.multi_label, scored.threshold)[trained["metric"]]
    calibration = {} if scored.multi_label else {
        "ece": reliability(scored.probs, scored.truth)["ece"],
        "ece_uncalibrated": unscaled_ece(scored.probs, scored.truth, scored.temperature)}
    return {**trained, "test": test, **calibration, "reused": reused}


SPREAD = ("val", "test", "ece", "ece_uncalibrated")  # what final_summary reports over the seeds


def final_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    runs = sorted(runs, key=lambda r: r["seed"])
    return {"metric": runs[0]["metric"], "seeds": [r["seed"] for r in runs],
            **{key: spread([r[key] for r in runs]) for key in SPREAD if key in runs[0]}}


def describe(final: dict[str, Any]) -> str:
    """One line for the card, the log and best.yaml's header."""
    val, test = final["val"], final["test"]
    return (f"The winner over {test['n']} seeds: validation {final['metric']} {val['mean']:.4f} ± {val['std']:.4f}; "
            f"test {final['metric']} {test['mean']:.4f} ± {test['std']:.4f} (95 % t-interval "
            f"{test['low']:.4f}-{test['high']:.4f}){_calibration(final)}, test read once per seed after the choice")


def _calibration(final: dict[str, Any]) -> str:
    if "ece" not in final:
        return ""
    ece, raw = final["ece"], final["ece_uncalibrated"]
    return f"; test ECE {ece['mean']:.4f} ± {ece['std']:.4f} after temperature scaling ({raw['mean']:.4f} at T = 1)"
