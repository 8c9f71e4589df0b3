"""Writes the intake corpus: data files a user could hand TrainFlow, bad and valid, and
`expected.json` with each file's exact outcome (run it from anywhere; it rewrites the folder).

A bad file's outcome is the fragment its one-line error must contain; a valid file's is the rows
read and kept and the classes. tests/test_intake.py reads them back.
"""
from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
POS = ["great", "wonderful", "lovely", "superb", "brilliant", "delightful"]
NEG = ["awful", "terrible", "boring", "broken", "useless", "dreadful"]


def rows(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = "positive" if i % 2 else "negative"
        out.append((f"review {i}: the {rng.choice(['film', 'phone', 'hotel', 'meal'])} was "
                    f"{rng.choice(POS if label == 'positive' else NEG)}", label))
    return out


def to_csv(data: list, header=("text", "label"), sep: str = ",", newline: str = "\n") -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=sep, lineterminator=newline)
    writer.writerow(header)
    writer.writerows(data)
    return buf.getvalue().encode()


def to_jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


def main() -> None:
    good = rows(60)
    files: dict[str, tuple[bytes, dict]] = {}

    def bad(name: str, data: bytes, error: str, **overrides: str) -> None:
        files[name] = (data, {"error": error, "overrides": overrides})

    def ok(name: str, data: bytes, read: int, kept: int, classes: dict[str, int], **overrides: str) -> None:
        files[name] = (data, {"rows_read": read, "rows_kept": kept, "classes": classes, "overrides": overrides})

    both = {"negative": 30, "positive": 30}
    # ------------------------------------------------------------------ bad, refused in one line
    bad("empty.csv", b"", "file is empty")
    bad("whitespace_only.csv", b"\n \n\t\n", "file holds only whitespace")
    bad("header_only.csv", b"text,label\n", "no data rows")
    bad("missing_column.csv", to_csv(good, header=("review", "label")), "missing column(s) ['text']")
    bad("latin1.csv", "text,label\n".encode() + "un caf\xe9 charmant,positive\n".encode("latin-1") * 20,
        "row 1: not valid UTF-8")
    bad("latin1_late.csv", to_csv(good)[:-1] + b"\n" + "d\xe9j\xe0 vu,negative\n".encode("latin-1"),
        "row 61: not valid UTF-8")
    bad("binary.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "not a text file")
    bad("ragged.csv", to_csv(good[:30]) + b"this row,has,too many,fields\n" + to_csv(good[30:])[len(b"text,label\n"):],
        "row 31: 4 fields where the header has 2")
    bad("mostly_missing_labels.csv", to_csv([(t, "" if i % 3 else l) for i, (t, l) in enumerate(good)]),
        "40 of 60 rows are bad")
    bad("one_class.csv", to_csv([(t, "positive") for t, _ in good]), "need at least 2 classes")
    bad("all_empty_texts.csv", to_csv([("", l) for _, l in good]), "need at least 2 classes")
    bad("one_row.csv", to_csv(good[:1]), "need at least 2 classes")
    bad("five_rows.csv", to_csv(good[:5]), "too few for the")
    bad("few_after_dedupe.csv", to_csv(good[:4] * 30), "after deduplication, too few for the")
    bad("broken_line.jsonl", to_jsonl([{"text": t, "label": l} for t, l in good[:6]]) + b'{"text": "cut off\n'
        + to_jsonl([{"text": t, "label": l} for t, l in good[6:]]), "line 7: not valid JSON")
    bad("not_objects.jsonl", to_jsonl([[t, l] for t, l in good]), "line 1: expected one JSON object per line")
    bad("missing_field.jsonl", to_jsonl([{"text": t, "sentiment": l} for t, l in good]), "missing field(s) ['label']")
    bad("undeclared_label.csv", to_csv(good[:20] + [("the service was meh", "neutral")] + good[20:]),
        "row 21: label 'neutral' is not in the declared label set", **{"data.labels": "[negative,positive]"})
    bad("several_labels.csv", to_csv(good[:10] + [("good and bad", "positive|negative")] + good[10:]),
        "row 11: several labels in a single-label dataset")
    bad("tsv_told_csv.tsv", to_csv(good, sep=","), "missing column(s)", **{"data.format": "tsv"})
    # ------------------------------------------------------------------ valid, read right
    multiline = [(f"line one of {t}\nline two, with a comma\nand \"quotes\"", l) for t, l in good]
    ok("quoted_newlines.csv", to_csv(multiline), 60, 60, both, **{"data.dask.blocksize": "200"})
    ok("bom.csv", b"\xef\xbb\xbf" + to_csv(good), 60, 60, both)
    ok("tsv_named_csv.csv", to_csv(good, sep="\t"), 60, 60, both)
    ok("crlf.csv", to_csv(good, newline="\r\n"), 60, 60, both)
    ok("semicolon.csv", to_csv(good, sep=";"), 60, 60, both)
    ok("pipe.csv", to_csv(good, sep="|"), 60, 60, both)
    ok("quoted_header.csv", b'"text","label"\n' + to_csv(good)[len(b"text,label\n"):], 60, 60, both)
    ok("repeated_header.csv", to_csv(good[:30]) + b"text,label\n" + to_csv(good[30:])[len(b"text,label\n"):],
       61, 60, both, **{"data.max_bad_fraction": "0.02"})
    ok("no_trailing_newline.csv", to_csv(good)[:-1], 60, 60, both)
    ok("huge_text.csv", to_csv(good[:-1] + [(" ".join(["an enormous review"] * 100_000), "positive")]), 60, 60, both)
    ok("label_whitespace.csv", to_csv([(t, f" {l} " if i % 2 else l) for i, (t, l) in enumerate(good)]), 60, 60, both)
    ok("duplicates.csv", to_csv(good + good[:10] + [(t.upper() + "!", l) for t, l in good[10:20]]), 80, 60, both)
    ok("renamed_columns.csv", to_csv(good, header=("review", "sentiment")), 60, 60, both,
       **{"data.text_column": "review", "data.label_column": "sentiment"})
    ok("mixed_label_types.jsonl", to_jsonl([{"text": t, "label": 1 if l == "positive" else "0"} for t, l in good]),
       60, 60, {"0": 30, "1": 30})
    ok("unicode.jsonl", to_jsonl([{"text": f"{t} — 很好 😀 مرحبا", "label": l} for t, l in good]), 60, 60, both)
    ok("blank_line.jsonl", to_jsonl([{"text": t, "label": l} for t, l in good[:30]]) + b"\n"
       + to_jsonl([{"text": t, "label": l} for t, l in good[30:]]), 61, 60, both, **{"data.max_bad_fraction": "0.02"})
    buf = io.BytesIO()
    pd.DataFrame(good, columns=["text", "label"]).to_parquet(buf)
    ok("table.parquet", buf.getvalue(), 60, 60, both)

    for old in HERE.glob("*"):
        if old.name not in ("make_corpus.py",):
            old.unlink()
    for name, (data, _) in files.items():
        (HERE / name).write_bytes(data)
    (HERE / "expected.json").write_text(json.dumps({n: e for n, (_, e) in files.items()}, indent=1) + "\n")
    print(f"{len(files)} files written to {HERE}")


if __name__ == "__main__":
    main()
