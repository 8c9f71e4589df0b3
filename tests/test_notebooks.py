"""The evaluation notebooks: stored clean, run by TrainFlow's evaluate step, reproducible with the
Papermill CLI, metrics equal to scikit-learn's, HTML that loads nothing from another host."""
from __future__ import annotations

import base64
import json
import random
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import numpy as np
import pytest

from textclf.evaluation import analysis, notebooks
from textclf.evaluation.scoring import Scored

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("evaluate", "error_analysis", "explore_data")


# --------------------------------------------------------------------------- stored notebooks

@pytest.mark.parametrize("name", NAMES)
def test_stored_notebooks_are_clean_and_parameterized(name, tmp_path):
    path = ROOT / "notebooks" / f"{name}.ipynb"
    copy = tmp_path / path.name
    copy.write_text(path.read_text())
    assert notebooks.strip_outputs(copy) is False, f"{name}.ipynb is stored with outputs"
    book = nbformat.read(path, as_version=4)
    tagged = [c for c in book.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for parameter in ("run_id = None", "model_uri = None", "data_uri = None", 'output_dir = None'):
        assert parameter in tagged[0].source
    code = "\n".join(c.source for c in book.cells if c.cell_type == "code")
    assert "from textclf" in code and "def " not in code  # library code lives in textclf, not here
    assert book.metadata["kernelspec"]["name"] == notebooks.KERNEL


def test_kernel_is_installed_in_the_environment():
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(notebooks.KERNEL)
    assert Path(spec.argv[0]).resolve().parent == Path(sys.executable).resolve().parent


# --------------------------------------------------------------------------- HTML hygiene

class FetchedURLs(HTMLParser):
    """Attributes by which a browser fetches on its own (not <a href>, which a reader clicks)."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        wanted = {"script": "src", "img": "src", "iframe": "src", "link": "href", "source": "src",
                  "embed": "src", "object": "data", "video": "src", "audio": "src"}.get(tag)
        self.urls += [v for k, v in attrs if k == wanted and v]


def external_hosts(page: str) -> list[str]:
    parser = FetchedURLs()
    parser.feed(page)
    return [u for u in parser.urls if re.match(r"^(https?:)?//", u.strip(), re.IGNORECASE)]


def test_external_reference_check_catches_cdn_loads():
    page = ('<script src="https://cdn.example.org/require.js"></script><a href="https://example.org">doc</a>'
            '<link rel="stylesheet" href="//fonts.example.org/css"><img src="data:image/png;base64,AAAA">'
            '<style>@import url("https://cdn.example.org/x.css");</style>')
    assert notebooks.external_references(page) == [
        "https://cdn.example.org/require.js", "//fonts.example.org/css", "https://cdn.example.org/x.css"]
    assert external_hosts(page) == ["https://cdn.example.org/require.js", "//fonts.example.org/css"]


# --------------------------------------------------------------------------- analysis pieces

def test_default_slices_and_user_slices():
    slices = analysis.default_slices()
    assert slices["negation"]("this isn't good") and slices["negation"]("not at all")
    assert not slices["negation"]("nothingness is a word") and not slices["negation"]("a notable film")
    assert slices["has URL"]("see https://x.io/a") and slices["has @mention"]("hi @ana")
    assert not slices["has @mention"]("mail me at a@b.com")
    assert slices["0-5 words"]("one two") and slices[">30 words"](" ".join(["w"] * 31))
    assert analysis.pattern_slices({"refund": "refund"})["refund"]("REFUND please")
    assert set(analysis.load_slicing_functions("textclf.evaluation.analysis:default_slices")) == set(slices)
    with pytest.raises(ValueError, match="slicing_functions='textclf.evaluation.analysis:NOPE'"):
        analysis.load_slicing_functions("textclf.evaluation.analysis:NOPE")
    with pytest.raises(ValueError, match="bad pattern"):
        analysis.pattern_slices({"broken": "("})


def single_label_scored() -> Scored:
    texts = ["good film", "bad film", "not good", "great fun", "awful", "fine http://x.io"]
    truth = np.array([1, 0, 0, 1, 0, 1])
    probs = np.array([[.1, .9], [.8, .2], [.05, .95], [.3, .7], [.9, .1], [.6, .4]], dtype=np.float32)
    return Scored(texts, truth, probs, ["negative", "positive"], False, 0.5)


def test_error_analysis_tables():
    scored = single_label_scored()
    frame = analysis.predictions_frame(scored)
    assert frame["correct"].tolist() == [True, True, False, True, True, False]
    mistakes = analysis.confident_mistakes(frame, 5)
    assert mistakes["text"].tolist() == ["not good", "fine http://x.io"]  # surest first
    pairs = analysis.confusion_pairs(frame)
    assert pairs.to_dict("records") == [
        {"gold": "negative", "predicted": "positive", "count": 1, "examples": ["not good"]},
        {"gold": "positive", "predicted": "negative", "count": 1, "examples": ["fine http://x.io"]}]
    by_slice = analysis.slice_metrics(scored, analysis.default_slices()).set_index("slice")
    assert by_slice.loc["negation", "n"] == 1 and by_slice.loc["negation", "accuracy"] == 0.0
    assert by_slice.loc["has URL", "accuracy"] == 0.0 and by_slice.loc["has @mention", "n"] == 0
    # class thresholds: negative 0.583 (mean p on gold negatives), positive 0.667; "great fun"
    # (p_negative 0.3) stays under the negative threshold, so it is a plain right answer
    suspects = analysis.confident_disagreements(scored)
    assert suspects["text"].tolist() == ["not good", "fine http://x.io"]
    assert suspects["suggested"].tolist() == ["positive", "negative"]


def test_multi_label_error_analysis():
    labels = ["billing", "shipping", "app_bug"]
    truth = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 0], [0, 0, 1]])
    probs = np.array([[.9, .1, .1], [.2, .8, .1], [.9, .2, .95], [.1, .1, .9]], dtype=np.float32)
    scored = Scored(["refund", "late and crash", "charged twice, lost parcel", "crash"], truth, probs, labels, True, 0.5)
    frame = analysis.predictions_frame(scored)
    assert frame["correct"].tolist() == [True, False, False, True]
    assert frame.loc[2, "predicted"] == ["billing", "app_bug"]
    pairs = analysis.confusion_pairs(frame).set_index(["gold", "predicted"])["count"].to_dict()
    assert pairs == {("app_bug", "(none)"): 1, ("shipping", "app_bug"): 1}
    suspects = analysis.confident_disagreements(scored).set_index("text")["suspect"].to_dict()
    assert suspects == {"charged twice, lost parcel": ["+app_bug"], "late and crash": ["-app_bug"]}
    table = analysis.slice_metrics(scored, {"all": lambda t: True})
    assert table.loc[0, "subset_accuracy"] == 0.5


# --------------------------------------------------------------------------- whole runs

def evaluate_task(run):
    return run["evaluate"].task


def executed(path: Path):
    book = nbformat.read(path, as_version=4)
    outputs = [o for c in book.cells if c.cell_type == "code" for o in c.outputs]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, errors
    return book, outputs


def images(outputs) -> int:
    return sum("image/png" in o.get("data", {}) for o in outputs)


@pytest.mark.integration
def test_flow_runs_the_notebooks_and_shows_them_in_a_card(trained_run, tmp_path):
    task = evaluate_task(trained_run)
    metrics, reports = task["test_metrics"].data, task["reports"].data
    assert set(reports) == set(NAMES)
    folder = Path(reports["evaluate"]).parent
    assert json.loads((folder / "metrics.json").read_text()) == metrics  # one source of truth
    assert trained_run["end"].task["test_metrics"].data == metrics
    assert {"accuracy", "macro_f1", "roc_auc", "ece", "ece_uncalibrated", "accuracy_ci_low"} <= set(metrics)

    for name, html in reports.items():
        page = Path(html).read_text()
        assert "resolve_inputs(" not in page and "import " not in page, name  # results, not code cells
        assert external_hosts(page) == [], name
        assert notebooks.external_references(page) == [], name
        book, outputs = executed(folder / f"{name}.ipynb")
        assert book.metadata["papermill"]["parameters"]["run_id"] == trained_run.pathspec
    _, outputs = executed(folder / "evaluate.ipynb")
    assert images(outputs) >= 4  # confusion matrix, ROC/PR, reliability, learning curves
    _, outputs = executed(folder / "error_analysis.ipynb")
    texts = json.dumps([o.get("data", {}) for o in outputs])
    assert images(outputs) >= 2  # confidence histogram, slice bars
    assert texts.count("rgba(") > 10  # token attribution spans were rendered
    _, outputs = executed(folder / "explore_data.ipynb")
    assert images(outputs) >= 3 and "duplicates exact" in json.dumps([o.get("data", {}) for o in outputs])

    # `card get` through the flow's CLI, as a user would (it finds cards the way the writer stores them)
    saved = tmp_path / "card.html"
    done = subprocess.run([sys.executable, str(ROOT / "flows" / "train_flow.py"), "--no-pylint", "card", "get",
                           task.pathspec.split("/", 1)[1], "--id", "evaluation", str(saved)],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    card = saved.read_text()
    payload = json.loads(base64.b64decode(re.search(r'__MF_DATA__\["[^"]+"\] = "([^"]+)"', card).group(1)))
    frames = re.findall(r'data:text/html;base64,([A-Za-z0-9+/=]+)', json.dumps(payload))
    assert [base64.b64decode(f).decode() for f in frames] == [Path(reports[n]).read_text() for n in NAMES]


@pytest.mark.integration
def test_papermill_cli_reproduces_the_flow_metrics(trained_run, tmp_path):
    expected = evaluate_task(trained_run)["test_metrics"].data
    done = subprocess.run([sys.executable, "-m", "papermill", str(ROOT / "notebooks" / "evaluate.ipynb"),
                           str(tmp_path / "out.ipynb"), "-k", "textclf", "-p", "run_id", trained_run.pathspec,
                           "-p", "output_dir", str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "metrics.json").read_text()) == expected


@pytest.mark.integration
def test_a_bare_run_id_works_and_reports_stay_out_of_the_working_folder(trained_run, tmp_path):
    """`-p run_id 123` reaches the notebook as an int; with no output_dir the files go to the temp
    dir's report folder for that run, never the folder papermill was started in."""
    from textclf.evaluation.scoring import report_folder

    expected = evaluate_task(trained_run)["test_metrics"].data
    folder = report_folder(None, trained_run.pathspec)
    shutil.rmtree(folder, ignore_errors=True)
    done = subprocess.run([sys.executable, "-m", "papermill", str(ROOT / "notebooks" / "evaluate.ipynb"),
                           str(tmp_path / "out.ipynb"), "-k", "textclf", "-p", "run_id", trained_run.id],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ipynb"]
    assert json.loads((folder / "metrics.json").read_text()) == expected
    shutil.rmtree(folder)


@pytest.mark.integration
def test_misused_notebooks_fail_with_one_clear_line(trained_run, tmp_path):
    from conftest import latest_run, run_flow

    from textclf.errors import TextclfError
    from textclf.registry.inputs import resolve_inputs

    registration = trained_run["register"].task.data.registration
    uri = f"models:/{registration['model_name']}/{registration['version']}"
    assert resolve_inputs(model_uri=uri, data_uri=trained_run["end"].task.data.paths["data"]).model_name == \
        f"{uri} (v{registration['version']}, {trained_run.pathspec})"  # what the reports' headers show

    run_flow("train_flow.py", f"data.source={ROOT / 'tests' / 'corpus' / 'missing_column.csv'} model=tiny", check=False)
    stopped = latest_run("TrainFlow")
    assert not stopped.successful and "join_train" not in stopped
    with pytest.raises(TextclfError) as err:
        notebooks.execute("error_analysis", tmp_path, {"run_id": int(stopped.id)})
    message = str(err.value)
    assert "\n" not in message
    assert f"{stopped.pathspec} has no trained model: it stopped before join_train finished (last step: start)" in message

    with pytest.raises(TextclfError, match=r"^evaluate.ipynb failed in cell \d+: ModelNotFound: models:/no-such-model@champion: "
                                           r"not in the registry"):
        notebooks.execute("evaluate", tmp_path, {"model_uri": "models:/no-such-model@champion",
                                                 "data_uri": trained_run["end"].task.data.paths["data"]})


@pytest.mark.integration
def test_metrics_agree_with_scikit_learn_and_a_model_data_pair(trained_run, tmp_path):
    """The model folder + data folder form (how an analyst evaluates a registry model) gives the
    same numbers, and they equal scikit-learn's on predictions made here independently."""
    import pyarrow.parquet as pq
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    from textclf.model.predictor import Predictor

    end = trained_run["end"].task
    model_uri, paths = end["model_uri"].data, end["paths"].data
    notebooks.execute("evaluate", tmp_path, {"model_uri": model_uri, "data_uri": paths["data"],
                                             "output_dir": str(tmp_path), "bootstrap": 0})
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    table = pq.read_table(end["manifest"].data["shards"]["test"]).to_pandas()
    probs = Predictor(model_uri).predict_proba(table["text"].tolist())
    truth, pred = table["label"].to_numpy(), probs.argmax(1)
    assert metrics["n"] == len(table)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(truth, pred))
    assert metrics["macro_f1"] == pytest.approx(f1_score(truth, pred, average="macro"))
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(truth, probs[:, 1]), abs=1e-6)
    flow = evaluate_task(trained_run)["test_metrics"].data
    assert {k: v for k, v in flow.items() if "_ci_" not in k} == metrics


TAGS = {"billing": ["refund", "invoice", "charged"], "shipping": ["parcel", "courier", "delivery"],
        "app_bug": ["crash", "freezes", "login"]}


def tag_rows(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """A learnable multi-label set: each tag's keyword appears in the text."""
    rng, rows = random.Random(seed), []
    while len(rows) < n:
        tags = sorted(rng.sample(list(TAGS), rng.choice([1, 1, 2])))
        words = [rng.choice(TAGS[t]) for t in tags] + [rng.choice(["today", "again", "please", "help"])]
        rng.shuffle(words)
        rows.append((f"{' '.join(words)} ticket {len(rows)}", "|".join(tags)))
    return rows


@pytest.mark.integration
def test_multi_label_run_gets_the_multi_label_report(tmp_path):
    from conftest import TINY, latest_run, run_flow, write_csv

    csv = write_csv(tmp_path / "tags.csv", tag_rows(240), header=("text", "labels"))
    run_flow("train_flow.py", f"data.source={csv} data.label_column=labels data.multi_label=true {TINY} "
                              "train.nproc_per_node=1 registry.model_name=textclf-tags")
    run = latest_run("TrainFlow")
    task = evaluate_task(run)
    metrics, reports = task["test_metrics"].data, task["reports"].data
    assert {"micro_f1", "macro_f1", "subset_accuracy", "hamming_loss", "threshold"} <= set(metrics)
    assert "accuracy" not in metrics
    assert run["register"].task["registration"].data["metric"] == "micro_f1"  # the gate's `auto`
    folder = Path(reports["evaluate"]).parent
    details = json.loads((folder / "report.json").read_text())
    assert set(details["per_label"]) == set(TAGS) and len(details["threshold_sweep"]) > 5
    _, outputs = executed(folder / "evaluate.ipynb")
    shown = json.dumps([o.get("data", {}) for o in outputs])
    assert "Per-label scores" in shown and "Confusion matrix" not in shown
    assert images(outputs) >= 3  # per-label bars, threshold sweep, learning curves
    for name in NAMES:
        executed(folder / f"{name}.ipynb")
        assert external_hosts(Path(reports[name]).read_text()) == []
    # the multi-label numbers equal scikit-learn's on the shards' gold rows
    from sklearn.metrics import f1_score, hamming_loss

    from textclf.evaluation.scoring import load_predictor, score_split

    scored = score_split(load_predictor(run["end"].task["model_uri"].data), task["manifest"].data["shards"]["test"])
    pred = scored.predicted
    assert metrics["micro_f1"] == pytest.approx(f1_score(scored.truth, pred, average="micro", zero_division=0))
    assert metrics["hamming_loss"] == pytest.approx(hamming_loss(scored.truth, pred))
