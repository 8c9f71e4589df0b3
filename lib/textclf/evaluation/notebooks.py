"""Run the project's parameterized notebooks with Papermill and render them to self-contained HTML.

The flow's evaluate step and analysts run the very same notebooks:

    papermill notebooks/evaluate.ipynb out.ipynb -k textclf -p run_id TrainFlow/123
"""
from __future__ import annotations

import base64
import re
import tempfile
from pathlib import Path
from typing import Any

import nbformat

from textclf.config import PROJECT_ROOT
from textclf.errors import TextclfError
from textclf.storage import is_remote, join, upload_dir

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
KERNEL = "textclf"  # installed into the project's venv by scripts/setup.sh (ipykernel --sys-prefix)
REPORTS = ("evaluate", "error_analysis", "explore_data")

# Tags that make a browser fetch something: <script src>, <link href>, <img src>, <iframe src>, ...
_FETCHING = re.compile(r"<(script|link|img|iframe|source|embed|object|video|audio)\b[^>]*?"
                       r"\b(?:src|href|data)\s*=\s*[\"']?((?:https?:)?//[^\"'\s>]+)", re.IGNORECASE)
_CSS_IMPORT = re.compile(r"@import\s+(?:url\()?[\"']?((?:https?:)?//[^\"')\s;]+)", re.IGNORECASE)


def execute(name: str, output_dir: str | Path, parameters: dict[str, Any], kernel: str = KERNEL,
            timeout: int = 1800) -> Path:
    """Execute `notebooks/<name>.ipynb` with `parameters` into `<output_dir>/<name>.ipynb`.

    The kernel starts in this process's working directory and environment, so it finds the
    same Metaflow datastore and artifact root as the caller.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    source = NOTEBOOK_DIR / f"{name}.ipynb"
    if not source.exists():
        raise TextclfError(f"no notebook {source}")
    out_dir = Path(output_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}.ipynb"
    try:
        pm.execute_notebook(str(source), str(target), parameters=parameters, kernel_name=kernel,
                            progress_bar=False, execution_timeout=timeout)
    except PapermillExecutionError as err:
        raise TextclfError(f"{source.name} failed in cell {err.exec_count}: {err.ename}: {err.evalue} "
                           f"(executed notebook: {target})") from None
    return target


def render_html(notebook: str | Path) -> Path:
    """A self-contained HTML page next to the executed notebook: results only (the executed .ipynb
    keeps the code), images inline, no CDN scripts."""
    from nbconvert import HTMLExporter

    path = Path(notebook)
    exporter = HTMLExporter(mathjax_url="", require_js_url="", jupyter_widgets_base_url="", widget_renderer_url="",
                            embed_images=True, exclude_input=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nbformat.read(path, as_version=4))
    found = external_references(body)
    if found:
        raise TextclfError(f"{path.name}: rendered HTML would load from other hosts: {found[:5]}")
    html = path.with_suffix(".html")
    html.write_text(body, encoding="utf-8")
    return html


def external_references(html: str) -> list[str]:
    """URLs on other hosts that a page would fetch by itself (links a reader may click are fine)."""
    return [m.group(2) for m in _FETCHING.finditer(html)] + [m.group(1) for m in _CSS_IMPORT.finditer(html)]


def run_reports(parameters: dict[str, Any], output_dir: str | Path, names: tuple[str, ...] = REPORTS,
                workers: int | None = None) -> dict[str, dict[str, Path]]:
    """Execute and render each notebook, `workers` at once (default: all); returns name ->
    {"ipynb": path, "html": path}. Side by side by default: most of a report's time is its kernel
    starting and importing pandas, plotting and the library, which the others need not wait for
    (`bench/flow.py --notebooks` measures both ways). The first failure is raised."""
    from concurrent.futures import ThreadPoolExecutor

    def report(name: str) -> dict[str, Path]:
        executed = execute(name, output_dir, parameters)  # papermill is thread-safe without a cwd
        return {"ipynb": executed, "html": render_html(executed)}

    with ThreadPoolExecutor(max_workers=workers or len(names)) as pool:
        return dict(zip(names, pool.map(report, names)))


def strip_outputs(path: str | Path) -> bool:
    """Clear outputs and execution counts (how notebooks are stored); True if the file changed."""
    path = Path(path)
    before = path.read_text(encoding="utf-8")
    nb = nbformat.reads(before, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
    nb.metadata.pop("papermill", None)
    after = nbformat.writes(nb) + "\n"
    if after != before:
        path.write_text(after, encoding="utf-8")
    return after != before


def evaluate_run(root_uri: str, **inputs: str) -> tuple[dict[str, Any], dict[str, str], dict[str, Path]]:
    """The evaluate step: run every report notebook on `inputs` (run_id, model_uri, data_uri,
    log_uri), keep them under `<root_uri>/reports`, and return (test metrics from metrics.json,
    name -> HTML URI, local HTML)."""
    import json

    target = join(root_uri, "reports")
    local = Path(tempfile.mkdtemp(prefix="textclf-reports-")) if is_remote(target) else Path(target)
    made = run_reports({**inputs, "output_dir": str(local.resolve())}, local)
    metrics = json.loads((local / "metrics.json").read_text())
    upload_dir(local, target)
    return metrics, {name: join(target, files["html"].name) for name, files in made.items()}, \
        {name: files["html"] for name, files in made.items()}


def card_components(metrics: dict[str, Any], html_pages: dict[str, Path]) -> list:
    """Metaflow card components: the headline metrics, then each rendered notebook in a frame.

    Each page goes in as a data: URI, so the card stays one self-contained file.
    """
    from metaflow.cards import Markdown, Table

    parts = [Markdown("## Test metrics"),
             Table([[k, f"{v:.4f}" if isinstance(v, float) else str(v)] for k, v in metrics.items()],
                   headers=["metric", "value"])]
    for name, page in html_pages.items():
        data = base64.b64encode(Path(page).read_bytes()).decode()
        parts += [Markdown(f"## {name.replace('_', ' ').capitalize()} notebook"),
                  Markdown(f'<iframe title="{name}" src="data:text/html;base64,{data}" '
                           'style="width:100%;height:900px;border:1px solid #ddd"></iframe>')]
    return parts
