"""Preprocessing: validation errors that name the file/row/column, dedupe, leak-free splits."""
from __future__ import annotations

import hashlib
import json
import subprocess

import pandas as pd
import pyarrow.parquet as pq
import pytest

from conftest import toy_rows, write_csv
from textclf.config import compose
from textclf.data.cleaning import normalized_key
from textclf.errors import DataError
from textclf.data.preprocess import preprocess

SYNC = "model=tiny data.dask.scheduler_address=sync"


def prep(tmp_path, overrides: str, name: str = "out") -> dict:
    return preprocess(compose(f"{SYNC} {overrides}"), str(tmp_path / name))


def shard(manifest: dict, split: str) -> pd.DataFrame:
    return pq.read_table(manifest["shards"][split]).to_pandas()


def test_duplicates_never_straddle_splits(tmp_path):
    rows = toy_rows(300)
    variants = [(t.upper() + "!!", l) for t, l in rows[:60]] + [(f"  {t}  ", l) for t, l in rows[60:100]] + rows[:30]
    src = write_csv(tmp_path / "dups.csv", rows + variants)
    m = prep(tmp_path, f"data.source={src}")
    keys = {s: set(shard(m, s)["text"].map(normalized_key)) for s in ("train", "val", "test")}
    assert not keys["train"] & keys["val"] and not keys["train"] & keys["test"] and not keys["val"] & keys["test"]
    assert m["rows_kept"] == 300
    assert m["duplicates_exact"] == 30 + 40  # the verbatim copies, and the ones equal once whitespace is cleaned
    assert m["duplicates_normalized"] == 60  # upper-cased with punctuation


def test_split_is_stratified_and_deterministic(tmp_path):
    src = write_csv(tmp_path / "toy.csv", toy_rows(400))
    a, b = prep(tmp_path, f"data.source={src}", "a"), prep(tmp_path, f"data.source={src}", "b")
    for split in ("train", "val", "test"):
        assert shard(a, split)["row_id"].tolist() == shard(b, split)["row_id"].tolist()
    counts = a["splits"]["test"]["classes"]
    assert abs(counts["positive"] - counts["negative"]) <= 0.25 * sum(counts.values())
    assert a["splits"]["val"]["rows"] == pytest.approx(40, abs=12)  # each row by its own hash: sd 6 on 400 rows


def test_shard_tokens_are_what_the_backbones_tokenizer_gives(tmp_path, monkeypatch):
    """Workers tokenize with the Rust tokenizer alone and write shards a chunk at a time: the ids
    must be AutoTokenizer's, every row there once."""
    from transformers import AutoTokenizer

    from textclf.data import preprocess as step
    from textclf.model.backbones import resolve_backbone

    rows = toy_rows(60) + [("word " * 80, "positive"), ("Ünïcödé\u00a0text [SEP] [UNK]", "negative")]
    monkeypatch.setattr(step, "SHARD_CHUNK_ROWS", 7)  # several row groups per shard, the last one short
    m = prep(tmp_path, f"data.source={write_csv(tmp_path / 'toy.csv', rows)}")
    tokenizer = AutoTokenizer.from_pretrained(resolve_backbone("tiny-bert"))
    for split in ("train", "val", "test"):
        got = shard(m, split)
        want = tokenizer(got["text"].tolist(), truncation=True, max_length=64)["input_ids"]
        assert [x.tolist() for x in got["input_ids"]] == want
        assert got["length"].tolist() == [len(x) for x in want]
    assert sum(len(shard(m, s)) for s in ("train", "val", "test")) == m["rows_kept"]


def test_explicit_splits_drop_train_rows_duplicating_test(tmp_path):
    rows = toy_rows(200)
    train = write_csv(tmp_path / "train.csv", rows[:160] + rows[180:190])
    val = write_csv(tmp_path / "val.csv", rows[160:180])
    test = write_csv(tmp_path / "test.csv", rows[180:200])
    m = prep(tmp_path, f"data.source=null data.train={train} data.val={val} data.test={test}")
    assert m["splits"]["test"]["rows"] == 20 and m["splits"]["val"]["rows"] == 20
    assert m["splits"]["train"]["rows"] == 160
    assert not set(shard(m, "train")["text"]) & set(shard(m, "test")["text"])


@pytest.mark.parametrize("fmt", ["tsv", "jsonl", "parquet"])
def test_other_formats_and_column_names(tmp_path, fmt):
    frame = pd.DataFrame(toy_rows(120), columns=["sentence", "sentiment"])
    path = tmp_path / f"data.{fmt}"
    {"tsv": lambda: frame.to_csv(path, sep="\t", index=False),
     "jsonl": lambda: frame.to_json(path, orient="records", lines=True),
     "parquet": lambda: frame.to_parquet(path)}[fmt]()
    m = prep(tmp_path, f"data.source={path} data.text_column=sentence data.label_column=sentiment")
    assert m["rows_kept"] == 120 and m["id2label"] == {"0": "negative", "1": "positive"}


def test_label_names_rename_coded_labels(tmp_path):
    rows = [(t, int(l == "positive")) for t, l in toy_rows(120)]
    path = tmp_path / "coded.tsv"
    pd.DataFrame(rows, columns=["sentence", "label"]).to_csv(path, sep="\t", index=False)
    named = f"data.source={path} data.text_column=sentence +data.label_names.0=negative +data.label_names.1=positive"
    m = prep(tmp_path, f"{named} data.labels=[negative,positive]")
    assert m["id2label"] == {"0": "negative", "1": "positive"}
    train = shard(m, "train").merge(pd.DataFrame(rows, columns=["text", "coded"]), on="text")
    assert len(train) == m["splits"]["train"]["rows"] and (train["label"] == train["coded"]).all()

    pd.DataFrame(rows + [("an unmapped code", 2)], columns=["sentence", "label"]).to_csv(path, sep="\t", index=False)
    with pytest.raises(DataError, match=r"row 121: label '2' is not in the declared label set"):
        prep(tmp_path, f"{named} data.labels=[negative,positive]", "bad")


def test_multi_label_with_delimited_labels(tmp_path):
    rows = [(f"message {i} about {'bills' if i % 2 else 'parcels'} {'and crashes' if i % 3 == 0 else ''}",
             "|".join(t for t, on in (("billing", i % 2), ("shipping", not i % 2), ("app_bug", i % 3 == 0)) if on))
            for i in range(150)]
    src = write_csv(tmp_path / "tags.csv", rows, header=("text", "labels"))
    m = prep(tmp_path, f"data.source={src} data.label_column=labels data.multi_label=true")
    assert sorted(m["id2label"].values()) == ["app_bug", "billing", "shipping"]
    labels = shard(m, "train")["label"]
    assert all(1 <= len(ls) <= 2 for ls in labels)


def test_isolated_bad_rows_are_dropped_counted_and_located(tmp_path):
    rows = toy_rows(300)
    rows[9] = ("", "positive")
    rows[99] = ("a perfectly fine text", "")
    src = write_csv(tmp_path / "few_bad.csv", rows)
    m = prep(tmp_path, f"data.source={src}")
    assert m["bad_rows"] == 2 and m["rows_kept"] == 298
    assert [(b["row"], b["reason"]) for b in m["bad_row_examples"]] == [(10, "empty text"), (100, "missing label")]


def _bad_input_cases(tmp_path):
    good = toy_rows(60)
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "latin1.csv").write_bytes("text,label\n".encode() + "caf\xe9 was great,positive\n".encode("latin-1") * 5)
    write_csv(tmp_path / "cols.csv", good, header=("review", "label"))
    write_csv(tmp_path / "one_class.csv", [(t, "positive") for t, _ in good])
    write_csv(tmp_path / "unknown.csv", good[:20] + [("the service was meh", "neutral")] + good[20:])
    write_csv(tmp_path / "many_bad.csv", [(t if i % 5 else "", l) for i, (t, l) in enumerate(good)])
    (tmp_path / "ragged.csv").write_text("text,label\n" + "".join(f"row {i} is fine,positive\n" for i in range(30))
                                         + 'this row,has,too many,fields\n' + "the end,negative\n" * 3)
    return {
        "missing.csv": "file not found",
        "empty.csv": "file is empty",
        "latin1.csv": "row 1: not valid UTF-8",  # data rows from 1, as in every message
        "cols.csv": "missing column(s) ['text']",
        "one_class.csv": "need at least 2 classes",
        "unknown.csv": "row 21: label 'neutral' is not in the declared label set",
        "many_bad.csv": "12 of 60 rows are bad",
        "ragged.csv": "row 31: 4 fields where the header has 2",
    }


def test_each_bad_input_has_a_clear_error(tmp_path):
    for name, fragment in _bad_input_cases(tmp_path).items():
        with pytest.raises(DataError) as err:
            prep(tmp_path, f"data.source={tmp_path / name} data.labels=[negative,positive]", name=f"out-{name}")
        assert fragment in str(err.value), (name, str(err.value))
        assert name in str(err.value) or "rows are bad" in str(err.value), (name, str(err.value))
        assert not (tmp_path / f"out-{name}" / "manifest.json").exists()


def test_dvc_source_pinned_at_a_revision(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()

    def sh(*cmd):
        subprocess.run(cmd, cwd=repo, check=True, capture_output=True)

    sh("git", "init", "-q")
    sh("git", "config", "user.email", "t@t")
    sh("git", "config", "user.name", "t")
    sh("dvc", "init", "-q")
    write_csv(repo / "reviews.csv", toy_rows(100, seed=1))
    sh("dvc", "add", "-q", "reviews.csv")
    sh("git", "add", "-A")
    sh("git", "commit", "-qm", "v1")
    sh("git", "tag", "v1")
    write_csv(repo / "reviews.csv", toy_rows(140, seed=2))
    sh("dvc", "add", "-q", "reviews.csv")
    sh("git", "commit", "-qam", "v2")
    v1 = prep(tmp_path, f"data.source=dvc://reviews.csv@{repo} data.revision=v1", "v1")
    head = prep(tmp_path, f"data.source=dvc://reviews.csv@{repo}", "head")
    assert v1["rows_read"] == 100 and head["rows_read"] == 140
    entry = next(iter(v1["fingerprint"]["sources"].values()))
    tagged = subprocess.run(["git", "rev-parse", "v1"], cwd=repo, check=True, capture_output=True, text=True)
    assert entry["revision"] == "v1" and entry["dvc_rev"] == tagged.stdout.strip()  # the commit, not a movable name
    assert entry["dvc_path"] == "reviews.csv" and entry["dvc_repo"] == str(repo) and len(entry["dvc_md5"]) == 32
    # a content hash: the same bytes as a plain file fingerprint the same
    write_csv(tmp_path / "plain.csv", toy_rows(100, seed=1))
    assert entry["sha256"] == hashlib.sha256((tmp_path / "plain.csv").read_bytes()).hexdigest()
    assert v1["fingerprint"]["sha256"] != head["fingerprint"]["sha256"]
    assert json.loads((tmp_path / "v1" / "manifest.json").read_text())["rows_read"] == 100
