"""What a finished study looks like: optimisation history, parameter importances, parallel
coordinates, the trials table (validation only, for every candidate), the winner's test scores
over the final seeds, and the TuneFlow card that puts them together."""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import optuna

from textclf.config import TextclfConfig
from textclf.tuning.final import SPREAD, describe
from textclf.tuning.tracking import finish_parent_run


def study_figures(study: optuna.Study) -> dict[str, Any]:
    """Optimisation history, parameter importances, parallel coordinates (matplotlib figures).

    Importances need two finished trials that differ; with fewer that figure is left out.
    """
    from optuna.visualization import matplotlib as vis

    plots = {"optimisation history": vis.plot_optimization_history,
             "parameter importances": vis.plot_param_importances,
             "parallel coordinates": vis.plot_parallel_coordinate}
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, plot in plots.items():
            try:
                out[name] = plot(study).get_figure()
            except (ValueError, RuntimeError, ZeroDivisionError) as exc:
                print(f"{name}: not drawn ({exc})")
    return out


def trials_table(study: optuna.Study) -> tuple[list[str], list[list[str]]]:
    """Every candidate by its validation score (mean ± std over its seeds); test is no column here."""
    names = sorted({k for t in study.trials for k in t.params})
    rows = [[str(t.number), t.state.name, _validation(t), *[_fmt(t.params.get(k)) for k in names]]
            for t in study.trials]
    return ["trial", "state", "validation", *names], rows


def _validation(trial: optuna.trial.FrozenTrial) -> str:
    if trial.value is None:
        return ""
    seeds = len(trial.user_attrs.get("val_scores", [])) or 1
    if seeds == 1:
        return f"{trial.value:.4f}"
    return f"{trial.value:.4f} ± {trial.user_attrs['val_std']:.4f} ({seeds} seeds)"


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def report(page, study: optuna.Study, cfg: TextclfConfig, run_key: str, best: dict[str, Any], best_config: str,
           best_config_uri: str, kfold: dict[str, Any] | None, final: dict[str, Any] | None, mlflow_run: str) -> None:
    """Fill the TuneFlow card (headline, the winner on test, figures, trials, best.yaml) and close
    the study's MLflow run with the same figures and config as artifacts."""
    from metaflow.cards import Image, Markdown, Table

    page.append(Markdown(f"# TuneFlow {run_key}\n\nSampler `{cfg.tune.sampler}`, {len(study.trials)} trials "
                         f"compared on validation; best trial {best['number']}: **{best['value']:.4f}**  \n"
                         f"Best config: `{best_config_uri}`"))
    if kfold:
        page.append(Markdown(f"{kfold['n']}-fold cross-validation of the best config: "
                             f"**{kfold['mean']:.4f} ± {kfold['std']:.4f}**"))
    if final:
        page.append(Markdown(f"## The winner on test\n\n{describe(final)}."))
        titles = {"val": f"validation {final['metric']}", "test": f"test {final['metric']}", "ece": "test ECE",
                  "ece_uncalibrated": "test ECE at T = 1"}
        columns = [k for k in SPREAD if k in final]
        page.append(Table([[str(seed), *(f"{final[k]['scores'][i]:.4f}" for k in columns)]
                           for i, seed in enumerate(final["seeds"])],
                          headers=["seed", *(titles[k] for k in columns)]))
    files = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, figure in study_figures(study).items():
            page.append(Markdown(f"## {name.capitalize()}"))
            page.append(Image.from_matplotlib(figure))
            files.append(str(Path(tmp, name.replace(" ", "_") + ".png")))
            figure.savefig(files[-1], bbox_inches="tight")
        header, rows = trials_table(study)
        page.append(Markdown("## Trials"))
        page.append(Table(rows, headers=header))
        page.append(Markdown(f"## best.yaml\n\n```yaml\n{best_config}\n```"))
        files.append(str(Path(tmp, "best.yaml")))
        Path(files[-1]).write_text(best_config)
        finish_parent_run(cfg, mlflow_run, study, files, kfold, final)
