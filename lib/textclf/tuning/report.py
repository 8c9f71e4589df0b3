"""What a finished study looks like: optimisation history, parameter importances, parallel
coordinates, the trials table, and the TuneFlow card that puts them together."""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import optuna

from textclf.config import TextclfConfig
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
    names = sorted({k for t in study.trials for k in t.params})
    rows = [[str(t.number), t.state.name, "" if t.value is None else f"{t.value:.4f}",
             *[_fmt(t.params.get(k)) for k in names]] for t in study.trials]
    return ["trial", "state", "value", *names], rows


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def report(page, study: optuna.Study, cfg: TextclfConfig, run_key: str, best: dict[str, Any], best_config: str,
           best_config_uri: str, kfold: dict[str, Any] | None, mlflow_run: str) -> None:
    """Fill the TuneFlow card (headline, figures, trials, best.yaml) and close the study's MLflow
    run with the same figures and config as artifacts."""
    from metaflow.cards import Image, Markdown, Table

    page.append(Markdown(f"# TuneFlow {run_key}\n\nSampler `{cfg.tune.sampler}`, {len(study.trials)} trials; "
                         f"best trial {best['number']}: **{best['value']:.4f}**  \nBest config: `{best_config_uri}`"))
    if kfold:
        page.append(Markdown(f"{kfold['folds']}-fold cross-validation of the best config: "
                             f"**{kfold['mean']:.4f} ± {kfold['std']:.4f}**"))
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
        finish_parent_run(cfg, mlflow_run, study, files, kfold)
