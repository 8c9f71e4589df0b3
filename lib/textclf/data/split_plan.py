"""Every decision about rows, made once on the thin frame of pass one, and pass two that applies it.

Which rows are bad (and whether too many are), which are duplicates, the label map, and a
split that puts each row by a hash of its own normalized text (so a row keeps its split when rows
are added, and duplicates never straddle splits), stratified in expectation; then
`materialize_partition` keeps, cleans and encodes the chosen rows of each partition.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from textclf.config import DataConfig
from textclf.data.cleaning import (
    STATUS_OK,
    clean_text,
    hash64,
    row_positions,
    split_labels,
)
from textclf.data.shards import SPLITS
from textclf.errors import DataError

SPLIT_CODE = {name: code for code, name in enumerate(SPLITS)}
_ORDER = [SPLIT_CODE["test"], SPLIT_CODE["val"], SPLIT_CODE["train"]]  # by u
SPLIT_SALT = "textclf-split-v1"  # fixed: a row's split follows its text, never a training seed
DROP = -1


@dataclass
class Plan:
    """What pass two needs: the split of every kept row and the label map, plus the report."""
    assign: pd.Series  # pos -> split code (DROP for dropped rows)
    id2label: dict[int, str]
    multi_label: bool
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Origin:
    """Where the rows of the thin frame (sorted by position) come from: per source, its first and
    one-past-last partition (`spans`), and each partition's size."""
    thin: pd.DataFrame
    spans: list[tuple[str, int, int]]

    def __post_init__(self) -> None:
        n_parts = max(stop for _, _, stop in self.spans)
        self.sizes = np.bincount(self.thin["partition"].to_numpy(), minlength=n_parts)
        self.offsets = np.cumsum(self.sizes) - self.sizes

    def locate(self, i: int) -> tuple[str, int]:
        """Row `i`'s source file and 1-based data row (header not counted)."""
        part = int(self.thin["partition"].iat[i])
        uri, start = next((uri, start) for uri, start, stop in self.spans if start <= part < stop)
        return uri, int(self.offsets[part] - self.offsets[start] + self.thin["local"].iat[i] + 1)

    def rows_by_source(self) -> dict[str, int]:
        counts = {uri: int(self.sizes[start:stop].sum()) for uri, start, stop in self.spans}
        return {uri: n for uri, n in counts.items() if n}


def _label_counts(combo: np.ndarray, lists: list[list[str]]) -> pd.Series:
    """How many rows hold each label, `combo` being each row's index into `lists` (its labels),
    in descending count (ties: first seen)."""
    per_combo = np.bincount(combo, minlength=len(lists))
    counts: dict[str, int] = {}
    for c in pd.unique(combo):
        for label in lists[c]:
            counts[label] = counts.get(label, 0) + int(per_combo[c])
    return pd.Series(counts, dtype="int64").sort_values(ascending=False, kind="stable")


def plan(thin: pd.DataFrame, cfg: DataConfig, source_spans: list[tuple[str, int, int]]) -> Plan:
    """Every decision about rows, made once on the thin frame; raises DataError on bad input.

    Labels are handled per distinct label text (`combo`), never as a Python list per row: the
    plan holds a few numeric columns per row, whatever the number of rows."""
    thin = thin.sort_values("pos", kind="stable").reset_index(drop=True)
    total = len(thin)
    if total == 0:
        raise DataError(f"{', '.join(u for u, *_ in source_spans)}: no data rows")
    origin = _Origin(thin, source_spans)
    bad = (thin["status"] != STATUS_OK).to_numpy()
    bad_rows = [dict(zip(("file", "row"), origin.locate(i)), reason=str(thin["status"].iat[i]))
                for i in np.flatnonzero(bad)[:20]]
    n_bad = int(bad.sum())
    bad_by_reason = {str(k): int(v) for k, v in thin["status"][bad].value_counts().items()}
    if n_bad > cfg.max_bad_fraction * total:
        first = "; ".join(f"{b['file']} row {b['row']}: {b['reason']}" for b in bad_rows[:5])
        raise DataError(f"{n_bad} of {total} rows are bad, over the tolerance data.max_bad_fraction="
                        f"{cfg.max_bad_fraction}: {first}")
    good = thin.loc[~bad, ["pos", "key_exact", "key_norm", "split_hint"]]
    codes, texts = pd.factorize(thin["label"][~bad])
    good["combo"] = codes.astype(np.int32)
    lists = [str(t).split(cfg.label_delimiter) for t in texts]

    def first_row(wrong: list[bool]) -> tuple[int, int, str, int]:
        """The first good row whose combo is `wrong`, as (combo, count, file, row); count 0: none."""
        hits = np.flatnonzero(np.asarray(wrong, dtype=bool)[good["combo"].to_numpy()])
        if not len(hits):
            return -1, 0, "", 0
        return int(good["combo"].iat[hits[0]]), len(hits), *origin.locate(int(good.index[hits[0]]))

    if cfg.labels is not None:
        allowed = set(cfg.labels)
        unknown = [[l for l in ls if l not in allowed] for ls in lists]
        c, n, file, row = first_row([bool(u) for u in unknown])
        if n:
            raise DataError(f"{file} row {row}: label {unknown[c][0]!r} is not in the declared "
                            f"label set {sorted(allowed)} ({n} such rows)")
    if not cfg.multi_label:
        c, n, file, row = first_row([len(ls) > 1 for ls in lists])
        if n:
            raise DataError(f"{file} row {row}: several labels in a single-label dataset "
                            f"(set data.multi_label=true)")

    # Duplicates: keep the first occurrence, preferring test > val > train for explicit splits.
    priority = good["split_hint"].map({"test": 0, "val": 1, "train": 2, "": 3}).astype(int)
    ordered = good.assign(_prio=priority).sort_values(["_prio", "pos"], kind="stable")
    n_exact = int(ordered.duplicated("key_exact").sum()) if cfg.dedupe else 0
    kept = ordered.drop_duplicates("key_norm") if cfg.dedupe else ordered
    n_norm = len(ordered) - len(kept) - n_exact if cfg.dedupe else 0

    counts = _label_counts(kept["combo"].to_numpy(), lists)
    rare = sorted(counts[counts < cfg.min_count].index.tolist())
    if rare:
        lists = [[l for l in ls if l not in rare] for ls in lists]
        kept = kept[np.asarray([len(ls) > 0 for ls in lists], dtype=bool)[kept["combo"].to_numpy()]]
    names = list(cfg.labels) if cfg.labels is not None else sorted(counts.index.tolist())
    names = [n for n in names if n not in rare and n in counts.index]
    if len(names) < 2:
        where = ", ".join(u for u, *_ in source_spans)
        raise DataError(f"{where}: need at least 2 classes with >= data.min_count={cfg.min_count} rows; "
                        f"found {dict(counts)} in column {cfg.label_column!r}")
    label2id = {n: i for i, n in enumerate(names)}

    split = _assign_splits(kept, lists, cfg).to_numpy().astype(np.int8)
    positions = thin["pos"].to_numpy()
    assign = np.full(total, DROP, dtype=np.int8)
    assign[np.searchsorted(positions, kept["pos"].to_numpy())] = split

    by_split = {}
    for code, name in enumerate(SPLITS):
        members = kept["combo"].to_numpy()[split == code]
        flat = _label_counts(members, lists)
        by_split[name] = {"rows": int(len(members)), "classes": {n: int(flat.get(n, 0)) for n in names}}
    hints = set(kept["split_hint"].unique())
    check_feasible(by_split, {"val", "test"} - (set() if "" in hints else hints), cfg,
                   ", ".join(u for u, *_ in source_spans))
    report = {
        "rows_read": total,
        "rows_read_by_source": origin.rows_by_source(),
        "bad_rows": n_bad,
        "bad_rows_by_reason": bad_by_reason,
        "bad_row_examples": bad_rows,
        "duplicates_exact": n_exact,
        "duplicates_normalized": n_norm,
        "dropped_rare_classes": rare,
        "dropped_rare_class_rows": {name: int(counts[name]) for name in rare},
        "rows_kept": int(len(kept)),
        "splits": by_split,
    }
    return Plan(assign=pd.Series(assign, index=positions), id2label={i: n for n, i in label2id.items()},
                multi_label=cfg.multi_label, report=report)


def rows_needed(cfg: DataConfig, carved: set[str]) -> int:
    """The fewest distinct rows a class needs so that train and every split carved from it with a
    fraction above zero get one (`_fill_empty` moves rows where the threshold left a split empty)."""
    return 1 + sum(1 for s in carved if getattr(cfg, f"{s}_fraction") > 0)


def check_feasible(by_split: dict[str, Any], carved: set[str], cfg: DataConfig, where: str) -> None:
    """Every split has rows, and every class reaches each split carved from the data: otherwise a
    clear error now, instead of a crash in training."""
    for label, train_rows in by_split["train"]["classes"].items():
        lacking = [s for s in ("train", *sorted(carved)) if by_split[s]["classes"][label] == 0]
        if lacking:
            rows = sum(by_split[s]["classes"][label] for s in SPLITS)
            raise DataError(
                f"{where}: class {label!r} has {rows} distinct row(s) after deduplication, too few for the "
                f"{' and '.join(lacking)} split(s) to get one (with data.val_fraction={cfg.val_fraction} and "
                f"data.test_fraction={cfg.test_fraction} a class needs {rows_needed(cfg, carved)}); add rows, "
                f"set data.dedupe=false, or give data.train, data.val and data.test files")
    for name in SPLITS:  # training validates every epoch and evaluation needs test rows
        if by_split[name]["rows"] == 0:
            raise DataError(f"{where}: the {name} split is empty after deduplication and splitting; "
                            f"add rows, raise data.{name}_fraction, or give data.{name}"
                            if name != "train" else f"{where}: no rows are left to train on")


def _assign_splits(kept: pd.DataFrame, lists: list[list[str]], cfg: DataConfig) -> pd.Series:
    """The split of every kept row: its file's, or carved from the rows no file placed (`_carve`).
    A row's labels are `lists[combo]`."""
    hint = kept["split_hint"]
    if (hint != "").all():
        out = hint.map(SPLIT_CODE).astype(np.int64)
        named = set(hint.unique())
        if "val" not in named or "test" not in named:
            out = _carve(out, kept, lists, cfg, missing={"val", "test"} - named)
        return out
    return _carve(pd.Series(SPLIT_CODE["train"], index=kept.index), kept, lists, cfg, {"val", "test"})


def split_unit(key_norm: pd.Series) -> np.ndarray:
    """Each row's own point in [0, 1): a hash of its normalized text under a fixed salt, so it
    depends on nothing else (not the other rows, not the training seed)."""
    h = np.fromiter((hash64(str(k), SPLIT_SALT) for k in key_norm), dtype=np.int64, count=len(key_norm))
    return (h.view(np.uint64) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def _carve(out: pd.Series, kept: pd.DataFrame, lists: list[list[str]], cfg: DataConfig,
           missing: set[str]) -> pd.Series:
    """Carve the `missing` splits from the rows `out` puts in train, each row by its own point u:
    u < test_fraction is test, u < test_fraction + val_fraction is val, the rest train.

    A row keeps its split when rows are added, because u is its own. Rows with the same normalized
    text share u, so duplicates never straddle splits. Stratification holds in expectation; where a
    stratum (the label, or for multi-label the row's rarest label) gets no row of a split by the
    threshold, `_fill_empty` moves one in. Those moved rows are the only ones that can move again
    when rows are added: a class is stable once the threshold alone fills every split."""
    pool = out[out == SPLIT_CODE["train"]].index
    combo = kept.loc[pool, "combo"].to_numpy()
    freq = _label_counts(combo, lists)
    rarest = np.empty(len(lists), dtype=object)
    for c in pd.unique(combo):
        rarest[c] = min(lists[c], key=lambda l: (freq[l], l))
    stratum = rarest[combo]
    u = split_unit(kept.loc[pool, "key_norm"])
    fractions = {s: getattr(cfg, f"{s}_fraction") if s in missing else 0.0 for s in ("test", "val")}
    codes = np.select([u < fractions["test"], u < fractions["test"] + fractions["val"]],
                      [SPLIT_CODE["test"], SPLIT_CODE["val"]], SPLIT_CODE["train"])
    frame = pd.DataFrame({"stratum": stratum, "u": u, "code": codes}, index=pool)
    wanted = [SPLIT_CODE["train"], *(SPLIT_CODE[s] for s, f in fractions.items() if f > 0)]
    for _, rows in frame.groupby("stratum", sort=True):
        frame.loc[rows.index, "code"] = _fill_empty(rows, wanted)
    out = out.copy()
    out.loc[pool] = frame["code"]
    return out


def _fill_empty(rows: pd.DataFrame, wanted: list[int]) -> pd.Series:
    """The codes of one stratum with every wanted split given a row: while one is empty, the split
    with the most distinct texts (ties: train, test, val) gives up its text nearest to the empty
    split's interval of u (from train, its lowest u). The giver keeps a text, so a stratum with one
    distinct text per wanted split fills them all; a smaller one stays short (check_feasible)."""
    codes = rows["code"].copy()
    for _ in wanted:
        empty = [c for c in wanted if not (codes == c).any()]
        if not empty:
            break
        held = {c: rows["u"][codes == c] for c in wanted}
        giver = max(wanted, key=lambda c: (held[c].nunique(), -wanted.index(c)))
        if held[giver].nunique() < 2:
            break
        upward = _ORDER.index(giver) < _ORDER.index(empty[0])  # test < val < train on u
        nearest = held[giver].max() if upward else held[giver].min()
        codes[(codes == giver) & (rows["u"] == nearest)] = empty[0]
    return codes


# --------------------------------------------------------------------------- pass two: materialize

def materialize_partition(part: pd.DataFrame, assign: pd.Series, label2id: dict[str, int], cfg: DataConfig,
                          partition_info: dict | None = None) -> pd.DataFrame:
    """Kept rows of one partition: cleaned text, encoded label(s) and split code."""
    number = partition_info["number"] if partition_info else 0
    pos = row_positions(number, np.arange(len(part)))
    codes = assign.reindex(pos).fillna(DROP).astype(np.int8).to_numpy()
    keep = codes != DROP
    texts = [clean_text(t, cfg.clean) for t in part["text"].to_numpy()[keep]]
    raw = part["label"].to_numpy()[keep]
    if cfg.multi_label:
        labels = [[label2id[l] for l in split_labels(r, cfg) if l in label2id] for r in raw]
    else:
        labels = [label2id[split_labels(r, cfg)[0]] for r in raw]
    return pd.DataFrame({"row_id": pos[keep], "text": pd.Series(texts, dtype="string"),
                         "label": labels, "split": codes[keep]})
