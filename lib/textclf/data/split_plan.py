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


def _locate_rows(thin: pd.DataFrame, spans: list[tuple[str, int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """The source file and 1-based data row (header not counted) of every row of the thin frame.

    `spans` gives, per source, its first and one-past-last partition number.
    """
    n_parts = max(stop for _, _, stop in spans)
    sizes = thin.groupby("partition").size().reindex(range(n_parts), fill_value=0)
    offsets = (sizes.cumsum() - sizes).to_numpy()
    part = thin["partition"].to_numpy()
    files = np.empty(len(thin), dtype=object)
    rows = np.zeros(len(thin), dtype=np.int64)
    for uri, start, stop in spans:
        mask = (part >= start) & (part < stop)
        files[mask] = uri
        rows[mask] = offsets[part[mask]] - offsets[start] + thin["local"].to_numpy()[mask] + 1
    return files, rows


def plan(thin: pd.DataFrame, cfg: DataConfig, source_spans: list[tuple[str, int, int]]) -> Plan:
    """Every decision about rows, made once on the thin frame; raises DataError on bad input."""
    thin = thin.sort_values("pos", kind="stable").reset_index(drop=True)
    total = len(thin)
    if total == 0:
        raise DataError(f"{', '.join(u for u, *_ in source_spans)}: no data rows")
    file_of, rows = _locate_rows(thin, source_spans)
    bad = thin["status"] != STATUS_OK
    bad_rows = [{"file": str(file_of[i]), "row": int(rows[i]), "reason": str(thin["status"][i])}
                for i in np.flatnonzero(bad.to_numpy())[:20]]
    n_bad = int(bad.sum())
    bad_by_reason = {str(k): int(v) for k, v in thin["status"][bad].value_counts().items()}
    if n_bad > cfg.max_bad_fraction * total:
        first = "; ".join(f"{b['file']} row {b['row']}: {b['reason']}" for b in bad_rows[:5])
        raise DataError(f"{n_bad} of {total} rows are bad, over the tolerance data.max_bad_fraction="
                        f"{cfg.max_bad_fraction}: {first}")
    good = thin[~bad]

    label_lists = good["label"].map(lambda s: s.split(cfg.label_delimiter))
    if cfg.labels is not None:
        allowed = set(cfg.labels)
        unknown = label_lists.map(lambda ls: [l for l in ls if l not in allowed])
        offenders = unknown[unknown.map(len) > 0]
        if len(offenders):
            i = offenders.index[0]
            raise DataError(f"{file_of[i]} row {rows[i]}: label {offenders[i][0]!r} is not in the declared "
                            f"label set {sorted(allowed)} ({len(offenders)} such rows)")
    if not cfg.multi_label:
        multi = label_lists.map(len) > 1
        if multi.any():
            i = multi[multi].index[0]
            raise DataError(f"{file_of[i]} row {rows[i]}: several labels in a single-label dataset "
                            f"(set data.multi_label=true)")

    # Duplicates: keep the first occurrence, preferring test > val > train for explicit splits.
    priority = good["split_hint"].map({"test": 0, "val": 1, "train": 2, "": 3}).astype(int)
    ordered = good.assign(_prio=priority).sort_values(["_prio", "pos"], kind="stable")
    n_exact = int(ordered.duplicated("key_exact").sum()) if cfg.dedupe else 0
    kept = ordered.drop_duplicates("key_norm") if cfg.dedupe else ordered
    n_norm = len(ordered) - len(kept) - n_exact if cfg.dedupe else 0
    kept_lists = label_lists.loc[kept.index]

    counts = pd.Series([l for ls in kept_lists for l in ls]).value_counts()
    rare = sorted(counts[counts < cfg.min_count].index.tolist())
    if rare:
        kept_lists = kept_lists.map(lambda ls: [l for l in ls if l not in rare])
        kept = kept[kept_lists.map(len) > 0]
        kept_lists = kept_lists.loc[kept.index]
    names = list(cfg.labels) if cfg.labels is not None else sorted(counts.index.tolist())
    names = [n for n in names if n not in rare and n in counts.index]
    if len(names) < 2:
        where = ", ".join(u for u, *_ in source_spans)
        raise DataError(f"{where}: need at least 2 classes with >= data.min_count={cfg.min_count} rows; "
                        f"found {dict(counts)} in column {cfg.label_column!r}")
    label2id = {n: i for i, n in enumerate(names)}

    split = _assign_splits(kept, kept_lists, cfg)
    assign = pd.Series(DROP, index=thin["pos"].to_numpy(), dtype=np.int8)
    assign.loc[kept["pos"].to_numpy()] = split.to_numpy().astype(np.int8)

    by_split = {}
    for code, name in enumerate(SPLITS):
        members = kept_lists[split.to_numpy() == code]
        flat = pd.Series([l for ls in members for l in ls], dtype="string").value_counts()
        by_split[name] = {"rows": int(len(members)), "classes": {n: int(flat.get(n, 0)) for n in names}}
    hints = set(kept["split_hint"])
    check_feasible(by_split, {"val", "test"} - (set() if "" in hints else hints), cfg,
                   ", ".join(u for u, *_ in source_spans))
    report = {
        "rows_read": total,
        "rows_read_by_source": {str(k): int(v) for k, v in pd.Series(file_of).value_counts(sort=False).items()},
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
    return Plan(assign=assign, id2label={i: n for n, i in label2id.items()}, multi_label=cfg.multi_label, report=report)


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


def _assign_splits(kept: pd.DataFrame, label_lists: pd.Series, cfg: DataConfig) -> pd.Series:
    """The split of every kept row: its file's, or carved from the rows no file placed (`_carve`)."""
    hint = kept["split_hint"].to_numpy()
    if (hint != "").all():
        out = pd.Series([SPLIT_CODE[h] for h in hint], index=kept.index)
        if "val" not in set(hint) or "test" not in set(hint):
            out = _carve(out, kept, label_lists, cfg, missing={"val", "test"} - set(hint))
        return out
    return _carve(pd.Series(SPLIT_CODE["train"], index=kept.index), kept, label_lists, cfg, {"val", "test"})


def split_unit(key_norm: pd.Series) -> np.ndarray:
    """Each row's own point in [0, 1): a hash of its normalized text under a fixed salt, so it
    depends on nothing else (not the other rows, not the training seed)."""
    h = np.fromiter((hash64(str(k), SPLIT_SALT) for k in key_norm), dtype=np.int64, count=len(key_norm))
    return (h.view(np.uint64) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def _carve(out: pd.Series, kept: pd.DataFrame, label_lists: pd.Series, cfg: DataConfig,
           missing: set[str]) -> pd.Series:
    """Carve the `missing` splits from the rows `out` puts in train, each row by its own point u:
    u < test_fraction is test, u < test_fraction + val_fraction is val, the rest train.

    A row keeps its split when rows are added, because u is its own. Rows with the same normalized
    text share u, so duplicates never straddle splits. Stratification holds in expectation; where a
    stratum (the label, or for multi-label the row's rarest label) gets no row of a split by the
    threshold, `_fill_empty` moves one in. Those moved rows are the only ones that can move again
    when rows are added: a class is stable once the threshold alone fills every split."""
    pool = out[out == SPLIT_CODE["train"]].index
    freq = pd.Series([l for ls in label_lists.loc[pool] for l in ls]).value_counts()
    stratum = label_lists.loc[pool].map(lambda ls: min(ls, key=lambda l: (freq[l], l)))
    u = split_unit(kept.loc[pool, "key_norm"])
    fractions = {s: getattr(cfg, f"{s}_fraction") if s in missing else 0.0 for s in ("test", "val")}
    codes = np.select([u < fractions["test"], u < fractions["test"] + fractions["val"]],
                      [SPLIT_CODE["test"], SPLIT_CODE["val"]], SPLIT_CODE["train"])
    frame = pd.DataFrame({"stratum": stratum.to_numpy(), "u": u, "code": codes}, index=pool)
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
