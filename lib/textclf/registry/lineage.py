"""From a model back to the run, data, code and config that made it (`textclf lineage <model uri>`).

A registered model's record is read from MLflow alone (the run's tags, `config.json` and
`data/manifest.json`), so it works wherever the registry is reachable; a TrainFlow run id is
read from Metaflow.
"""
from __future__ import annotations

from typing import Any

import yaml

from textclf.registry.resolution import default_tracking_uri, resolve_model, run_record
from textclf.registry.runs import run_outputs


def lineage(uri: str, tracking_uri: str | None = None) -> dict[str, Any]:
    """Model -> Metaflow run, MLflow run, data source and fingerprint / DVC rev, git commit, config."""
    model = resolve_model(uri, tracking_uri, download=False)
    record: dict[str, Any] = {"model": uri, "name": model.name, "version": model.version, "alias": model.alias,
                              "created": model.created, "path": model.path, **model.lineage}
    if model.lineage.get("mlflow_run") and model.name:
        stored = run_record(model.lineage["mlflow_run"], tracking_uri or default_tracking_uri())
        record.update(config=stored["config"], data_sources=stored["manifest"]["fingerprint"]["sources"])
    elif model.run_id:
        out = run_outputs(model.run_id)
        record.update(config=out.cfg, data_sources=out.manifest["fingerprint"]["sources"])
    record["test_metrics"] = model.metrics
    return record


def summary_card(record: dict[str, Any], test_metrics: dict[str, Any], registration: dict[str, Any]) -> list:
    """The end step's card: the gate's verdict, the test numbers, then the lineage."""
    from metaflow.cards import Markdown, Table

    numbers = [[k, f"{v:.4f}" if isinstance(v, float) else str(v)] for k, v in test_metrics.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)]
    links = [[k, str(record.get(k))] for k in ("metaflow_run", "branch", "requested_by", "mlflow_run", "data_source",
                                               "data_fingerprint", "dvc_rev", "git_commit", "git_dirty", "backbone",
                                               "created")]
    return [Markdown(f"# {registration['model_name']} v{registration['version']}: **{registration['alias']}**\n\n"
                     f"{registration['reason']}"),
            Markdown("## Test metrics"), Table(numbers, headers=["metric", "value"]),
            Markdown("## Lineage"), Table(links, headers=["", ""]),
            Markdown("## Data sources\n\n```\n" + yaml.safe_dump(record.get("data_sources"), sort_keys=False) + "```"),
            Markdown("## Resolved config\n\n```\n" + yaml.safe_dump(record.get("config"), sort_keys=False) + "```")]
