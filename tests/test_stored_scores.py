"""Score once, read many: TrainFlow's train step (rank 0, after training, in its own process)
scores the val and test splits once and stores the probabilities beside the model; the evaluate
notebook, error analysis and the gate read them instead of loading the model to score again, and
only scores of the very same rows are read."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import ROOT

pytestmark = pytest.mark.integration


def _run(trained_run) -> tuple[str, dict]:
    end = trained_run["end"].task
    return end["model_uri"].data, end["manifest"].data


def _split(shard: str):
    from textclf.data.shards import read_split
    from textclf.evaluation.scoring import SPLIT_COLUMNS

    return read_split(shard, SPLIT_COLUMNS)


@pytest.fixture
def counted(monkeypatch) -> dict[str, int]:
    """How often a model is loaded to score: Predictor constructions, wherever they happen."""
    import textclf.model.predictor as predictor_module

    calls = {"predictors": 0}

    class Counting(predictor_module.Predictor):
        def __init__(self, *args, **kwargs):
            calls["predictors"] += 1
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(predictor_module, "Predictor", Counting)
    return calls


def test_the_train_step_stores_each_split_once_with_what_scoring_the_model_gives(trained_run):
    from textclf.evaluation.scoring import load_predictor, score_split, stored_scores

    model, manifest = _run(trained_run)
    predictor = load_predictor(model)
    for split in ("val", "test"):
        shard = manifest["shards"][split]
        frame = _split(shard)
        about = json.loads(pq.read_metadata(Path(model, "scores", f"{split}.parquet")).metadata[b"textclf.scores"])
        assert (about["split"], about["shard_uri"], about["rows"]) == (split, shard, len(frame))
        stored = stored_scores(model, frame)
        assert stored is not None and stored.probs.shape == (len(frame), len(predictor.labels))
        assert np.allclose(stored.probs, score_split(predictor, shard).probs, atol=1e-6)
        assert np.allclose(stored.served_probs, predictor.predict_proba(frame["text"].tolist()), atol=1e-6)
        assert (stored.labels, stored.multi_label, stored.threshold) == \
            (predictor.labels, predictor.multi_label, predictor.threshold)


def test_reports_and_the_gate_read_the_candidate_without_loading_it(trained_run, tmp_path, counted):
    """The same Scored and the same gate numbers (label ids matched by name too) as scoring now,
    with no model loaded; a folder without stored scores (a champion's) is scored as before."""
    from textclf.evaluation.scoring import scored_split
    from textclf.registry.gate import gate_score

    model, manifest = _run(trained_run)
    test, id2label = manifest["shards"]["test"], manifest["id2label"]
    swapped = dict(zip(id2label, reversed(list(id2label.values()))))
    read = scored_split(model, test)
    gate = [gate_score(model, test, labels, "accuracy", multi_label=False) for labels in (id2label, swapped)]
    assert counted["predictors"] == 0

    bare = shutil.copytree(model, tmp_path / "bare", ignore=shutil.ignore_patterns("scores"))
    scored = scored_split(str(bare), test)
    assert counted["predictors"] == 1
    assert np.allclose(read.probs, scored.probs, atol=1e-6) and (read.truth == scored.truth).all()
    assert (read.texts, read.labels, read.threshold) == (scored.texts, scored.labels, scored.threshold)
    assert gate == pytest.approx([gate_score(bare, test, labels, "accuracy", multi_label=False)
                                  for labels in (id2label, swapped)])
    assert counted["predictors"] == 3


def test_scores_of_other_rows_or_another_model_are_not_read(trained_run, tmp_path, counted):
    import pyarrow as pa

    from textclf.evaluation.scoring import load_predictor, score_split, scored_split, stored_scores

    model, manifest = _run(trained_run)
    table = pq.read_table(manifest["shards"]["test"])
    fewer = tmp_path / "fewer.parquet"
    pq.write_table(table.slice(1), fewer)  # the test split less one row: another split
    relabelled = tmp_path / "relabelled.parquet"
    labels = table["label"].to_pylist()
    flipped = pa.array([1 - labels[0], *labels[1:]], pa.int32())  # the same texts, one gold label changed
    pq.write_table(table.set_column(table.schema.get_field_index("label"), "label", flipped), relabelled)
    for shard in (fewer, relabelled):
        assert stored_scores(model, _split(str(shard))) is None
    scored = scored_split(model, str(fewer))
    assert counted["predictors"] == 1 and len(scored.texts) == table.num_rows - 1
    assert np.allclose(scored.probs, score_split(load_predictor(model), str(fewer)).probs, atol=1e-6)

    retrained = shutil.copytree(model, tmp_path / "retrained")
    (retrained / "training.json").write_text((retrained / "training.json").read_text() + "\n")
    assert stored_scores(str(retrained), _split(manifest["shards"]["test"])) is None


def test_a_split_cut_shorter_than_the_model_reads_is_stored_both_ways(trained_run, tmp_path):
    """The reports evaluate the split's own token ids; the gate and the drift profile see what the
    server sees, the raw text through the model's tokenizer. Where those differ, both are stored."""
    import pyarrow as pa

    from textclf.data.shards import token_ids
    from textclf.evaluation.scoring import load_predictor, store_scores, stored_scores

    model, manifest = _run(trained_run)
    folder = shutil.copytree(model, tmp_path / "model", ignore=shutil.ignore_patterns("scores"))
    table = pq.read_table(manifest["shards"]["test"])
    cut = pa.array([ids[:3] for ids in table["input_ids"].to_pylist()], pa.list_(pa.int32()))
    shard = tmp_path / "cut.parquet"
    pq.write_table(table.set_column(table.schema.get_field_index("input_ids"), "input_ids", cut), shard)

    predictor = load_predictor(str(folder))
    rows = store_scores(predictor, str(folder), "test", str(shard))
    stored = stored_scores(str(folder), _split(str(shard)))
    texts = table["text"].to_pylist()
    assert np.allclose(stored.probs, predictor.probs_from_ids(token_ids(rows["input_ids"])), atol=1e-6)
    assert np.allclose(stored.served_probs, predictor.predict_proba(texts), atol=1e-6)
    assert not np.allclose(stored.probs, stored.served_probs)
    assert rows["served_length"].tolist() == [len(x) for x in predictor.encode(texts)]


def test_the_evaluate_notebook_reads_stored_scores_without_torch(trained_run, tmp_path):
    """The notebook itself, as the flow runs it, with one cell added at the end that reports what
    its kernel imported: no torch, no transformers, and the flow's metrics."""
    import nbformat

    model, _ = _run(trained_run)
    book = nbformat.read(ROOT / "notebooks" / "evaluate.ipynb", as_version=4)
    book.cells.append(nbformat.v4.new_code_cell(
        "import sys\nprint(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"))
    source = tmp_path / "evaluate.ipynb"
    nbformat.write(book, source)
    data = trained_run["end"].task["paths"].data["data"]
    done = subprocess.run([sys.executable, "-m", "papermill", str(source), str(tmp_path / "out.ipynb"), "-k", "textclf",
                           "-p", "model_uri", model, "-p", "data_uri", data, "-p", "output_dir", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    last = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[-1]
    assert "".join(o.get("text", "") for o in last.outputs).strip() == "[]"
    flow = trained_run["end"].task["test_metrics"].data
    assert json.loads((tmp_path / "metrics.json").read_text()) == flow
