"""The winner scored once on test: the chosen config trained with each of `tune.final_seeds`
seeds, selected on validation as every trial was, and only then scored on the test split, which
no step reads before (`sealing`). What is reported: validation and test, each mean ± std over
the seeds, and test's 95 % t-interval."""
from __future__ import annotations

from typing import Any

from textclf.evaluation.metrics import quick_metrics
from textclf.evaluation.scoring import load_predictor, score_split
from textclf.tuning.seeds import spread, train_seed


def final_run(cfg_dict: dict[str, Any], params: dict[str, Any], manifest: dict[str, Any], run_key: str,
              i: int, concurrent: int = 1) -> dict[str, Any]:
    """Seed i of the winner (`manifest`: unsealed): its validation score, then its one test score,
    by the metric training selected on. `concurrent`: seeds training side by side on this machine."""
    record = train_seed(cfg_dict, params, manifest, run_key, "final", i, concurrent)
    metric = record["selection_metric"]
    scored = score_split(load_predictor(record["model"]), manifest["shards"]["test"])
    test = quick_metrics(scored.truth, scored.probs, scored.multi_label, scored.threshold)[metric]
    return {"seed": record["seed"], "metric": metric, "val": record["best_val"], "test": test, "model": record["model"]}


def final_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    runs = sorted(runs, key=lambda r: r["seed"])
    return {"metric": runs[0]["metric"], "seeds": [r["seed"] for r in runs],
            "val": spread([r["val"] for r in runs]), "test": spread([r["test"] for r in runs])}


def describe(final: dict[str, Any]) -> str:
    """One line for the card, the log and best.yaml's header."""
    val, test = final["val"], final["test"]
    return (f"The winner over {test['n']} seeds: validation {final['metric']} {val['mean']:.4f} ± {val['std']:.4f}; "
            f"test {final['metric']} {test['mean']:.4f} ± {test['std']:.4f} (95 % t-interval "
            f"{test['low']:.4f}-{test['high']:.4f}), test read once per seed after the choice")
