"""Is the champion still fit for purpose? Performance on fresh labels, drift against the profile
of its training data, and age; and, when it is not, the next data version to retrain on.

TrainFlow saves a reference profile beside every model (label shares, token lengths, prediction
confidence, a sample of sentence embeddings). MonitorFlow compares fresh labelled text with it:

- labels: total variation distance between label shares;
- lengths and confidence: population stability index (PSI) over reference deciles;
- meaning: the kernel two-sample test (squared MMD, RBF kernel with the median-distance
  bandwidth, permutation p-value) on sentence embeddings.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import torch

from textclf.data import normalized_key
from textclf.metrics import multi_hot, quick_metrics, resolve_metric
from textclf.predict import Predictor
from textclf.sampling import collate
from textclf.storage import filesystem, join, local_dir, read_json, write_bytes, write_json

PROFILE = "profile.json"
EMBEDDINGS = "profile_embeddings.npy"


# --------------------------------------------------------------------------- reference profile

@torch.inference_mode()
def embed(predictor: Predictor, texts: list[str]) -> np.ndarray:
    """Pooled sentence embeddings from the classifier's own backbone (what its head sees)."""
    ids = predictor.encode(texts)
    out = []
    for start in range(0, len(ids), predictor.batch_size):
        batch = {k: v.to(predictor.device) for k, v in collate(ids[start:start + predictor.batch_size],
                                                                predictor.pad_id).items()}
        out.append(predictor.model.embed(**batch).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 1), np.float32)


def describe(predictor: Predictor, texts: list[str], labels: list[list[str]], max_embeddings: int = 256,
             seed: int = 0) -> tuple[dict[str, Any], np.ndarray]:
    """Label shares, token lengths, confidences and an embedding sample of labelled texts."""
    probs = predictor.predict_proba(texts)
    flat = [label for row in labels for label in row]
    shares = pd.Series(flat, dtype=object).value_counts(normalize=True)
    pick = np.random.default_rng(seed).permutation(len(texts))[:max_embeddings]
    return {
        "n": len(texts),
        "label_shares": {label: float(shares.get(label, 0.0)) for label in predictor.labels},
        "lengths": [int(len(x)) for x in predictor.encode(texts)],
        "confidence": probs.max(1).round(6).tolist() if len(texts) else [],
    }, embed(predictor, [texts[i] for i in pick])


def save_profile(model_uri: str, manifest: dict[str, Any], max_rows: int = 2000, seed: int = 0) -> str:
    """Profile held-out rows (val and test, up to `max_rows`) and store the profile inside the
    model folder, so that it travels with the model into the registry."""
    import pyarrow.parquet as pq

    from textclf.storage import filesystem

    id2label = {int(k): v for k, v in manifest["id2label"].items()}
    texts, labels = [], []
    for split in ("val", "test"):
        fs, path = filesystem(manifest["shards"][split])
        table = pq.read_table(path, columns=["text", "label"], filesystem=fs).to_pydict()
        texts += table["text"]
        labels += [[id2label[i] for i in (y if isinstance(y, list) else [y])] for y in table["label"]]
    pick = np.sort(np.random.default_rng(seed).permutation(len(texts))[:max_rows])
    with local_dir(model_uri) as model_dir:  # a gs:// model is read from a temporary copy
        profile, vectors = describe(Predictor(model_dir), [texts[i] for i in pick], [labels[i] for i in pick])
    profile["created"] = datetime.now(timezone.utc).isoformat()
    buf = io.BytesIO()
    np.save(buf, vectors.astype(np.float32))
    write_bytes(join(model_uri, EMBEDDINGS), buf.getvalue())
    write_json(join(model_uri, PROFILE), profile)
    return join(model_uri, PROFILE)


def load_profile(model_dir: str) -> tuple[dict[str, Any], np.ndarray]:
    fs, path = filesystem(join(model_dir, EMBEDDINGS))
    with fs.open(path, "rb") as f:
        vectors = np.load(io.BytesIO(f.read()))
    return read_json(join(model_dir, PROFILE)), vectors


# --------------------------------------------------------------------------- statistics

def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index over the reference's quantile bins (0.1 watch, 0.25 act)."""
    reference, current = np.asarray(reference, float), np.asarray(current, float)
    if len(reference) == 0 or len(current) == 0:
        return 0.0
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    ref = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1) / len(reference)
    cur = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1) / len(current)
    ref, cur = np.clip(ref, 1e-4, None), np.clip(cur, 1e-4, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def label_shift(reference: dict[str, float], labels: list[list[str]]) -> float:
    """Total variation distance between reference and current label shares (0 same, 1 disjoint)."""
    flat = pd.Series([label for row in labels for label in row], dtype=object)
    current = flat.value_counts(normalize=True) if len(flat) else pd.Series(dtype=float)
    keys = set(reference) | set(current.index)
    return float(0.5 * sum(abs(reference.get(k, 0.0) - float(current.get(k, 0.0))) for k in keys))


def mmd_test(x: np.ndarray, y: np.ndarray, permutations: int = 200, seed: int = 0) -> tuple[float, float]:
    """Squared MMD with an RBF kernel (median heuristic) and its permutation p-value."""
    if len(x) < 2 or len(y) < 2:
        return 0.0, 1.0
    z = np.concatenate([x, y]).astype(np.float64)
    sq = np.sum(z ** 2, 1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * z @ z.T, 0)
    bandwidth = np.median(d2[np.triu_indices(len(z), 1)]) or 1.0
    k = np.exp(-d2 / bandwidth)
    n = len(x)

    def stat(idx: np.ndarray) -> float:
        a, b = idx[:n], idx[n:]
        return k[np.ix_(a, a)].mean() + k[np.ix_(b, b)].mean() - 2 * k[np.ix_(a, b)].mean()

    observed = stat(np.arange(len(z)))
    rng = np.random.default_rng(seed)
    null = np.array([stat(rng.permutation(len(z))) for _ in range(permutations)])
    return float(observed), float((1 + np.sum(null >= observed)) / (1 + permutations))


# --------------------------------------------------------------------------- the decision

@dataclass
class Assessment:
    n_fresh: int
    metrics: dict[str, float]
    drift: dict[str, float]
    age_days: float
    reasons: list[str] = field(default_factory=list)

    @property
    def retrain(self) -> bool:
        return bool(self.reasons)

    def summary(self) -> str:
        if self.retrain:
            return "retrain because " + "; ".join(self.reasons)
        return (f"keep the champion: {self.n_fresh} fresh labels, "
                + ", ".join(f"{k} {v:.3f}" for k, v in {**self.metrics, **self.drift}.items()))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "retrain": self.retrain, "summary": self.summary()}


def assess(mcfg, predictor: Predictor, profile: dict[str, Any], reference_vectors: np.ndarray,
           fresh: pd.DataFrame, model_created: datetime) -> tuple[Assessment, dict[str, Any]]:
    """Score fresh labelled rows (`text`, `labels` lists) against the thresholds in `monitor` config.

    Returns the assessment and the raw series the card plots (confidences and lengths)."""
    texts, labels = fresh["text"].tolist(), fresh["labels"].tolist()
    probs = predictor.predict_proba(texts)
    metrics: dict[str, float] = {}
    index = {label: i for i, label in enumerate(predictor.labels)}
    scorable = [i for i, row in enumerate(labels) if row and set(row) <= set(index)]  # a label it never learned: no score
    if len(scorable) >= mcfg.min_labels:
        gold = [[index[x] for x in labels[i]] for i in scorable]
        if predictor.multi_label:
            metrics = quick_metrics(multi_hot(gold, len(index)), probs[scorable], True, predictor.threshold)
        else:
            metrics = quick_metrics([row[0] for row in gold], probs[scorable], False)
    current, vectors = describe(predictor, texts, labels, max_embeddings=len(reference_vectors) or 256)
    mmd2, p_value = mmd_test(reference_vectors, vectors, permutations=mcfg.permutations)
    drift = {
        "label_shift_tv": label_shift(profile["label_shares"], labels),
        "length_psi": psi(profile["lengths"], current["lengths"]),
        "confidence_psi": psi(profile["confidence"], current["confidence"]),
        "embedding_mmd2": mmd2,
        "embedding_mmd_p": p_value,
    }
    age = (datetime.now(timezone.utc) - model_created).total_seconds() / 86400
    reasons = []
    metric = resolve_metric(mcfg.metric, predictor.multi_label)
    if metric in metrics and metrics[metric] < mcfg.min_metric:
        reasons.append(f"{metric} on {len(scorable)} fresh labels fell to {metrics[metric]:.2f} < {mcfg.min_metric:.2f}")
    if len(texts) >= mcfg.min_labels:
        for name, limit in (("label_shift_tv", mcfg.max_label_shift), ("length_psi", mcfg.max_psi),
                            ("confidence_psi", mcfg.max_psi)):
            if drift[name] > limit:
                reasons.append(f"{name} {drift[name]:.2f} > {limit:.2f}")
        if p_value < mcfg.mmd_alpha:
            reasons.append(f"embedding drift: MMD p-value {p_value:.3f} < {mcfg.mmd_alpha}")
    if mcfg.max_age_days and age > mcfg.max_age_days:
        reasons.append(f"the champion is {age:.0f} days old > {mcfg.max_age_days}")
    series = {"reference_confidence": profile["confidence"], "fresh_confidence": current["confidence"],
              "reference_lengths": profile["lengths"], "fresh_lengths": current["lengths"]}
    return Assessment(len(texts), metrics, drift, age, reasons), series


# --------------------------------------------------------------------------- fresh data and the next version

def accepted_feedback(feedback: pd.DataFrame, labels: list[str], multi_label: bool) -> tuple[pd.DataFrame, dict]:
    """Feedback rows fit to train on: non-empty text, known labels (one, unless multi-label);
    the latest answer wins when the same text was corrected more than once."""
    if feedback.empty:
        return feedback.assign(key=[]), {"received": 0, "accepted": 0, "rejected": {}}
    rows = feedback.copy()
    rows["text"] = rows["text"].astype(str).str.strip()
    rows["labels"] = rows["labels"].map(lambda v: [str(x) for x in (v if isinstance(v, (list, tuple, np.ndarray)) else [v])])
    known = set(labels)
    why = pd.Series("", index=rows.index, dtype=object)
    why[rows["text"] == ""] = "empty text"
    why[(why == "") & rows["labels"].map(lambda ls: not ls or not set(ls) <= known)] = "unknown label"
    if not multi_label:
        why[(why == "") & rows["labels"].map(len).ne(1)] = "several labels for a single-label model"
    ok = rows[why == ""].assign(key=lambda f: f["text"].map(normalized_key))
    if "timestamp" in ok:
        ok = ok.sort_values("timestamp", kind="stable")
    ok = ok.drop_duplicates("key", keep="last")
    return ok, {"received": len(rows), "accepted": len(ok), "rejected": why[why != ""].value_counts().to_dict()}


def new_data_version(previous: pd.DataFrame, feedback: pd.DataFrame, text_column: str, label_column: str,
                     multi_label: bool, delimiter: str, root: str) -> dict[str, Any]:
    """Previous rows, unchanged and in order, followed by each accepted feedback row once.

    A feedback row whose text already appears with the same labels adds nothing; one that
    corrects an earlier label is appended, and preprocessing's deduplication keeps one of them.
    Written as `<root>/datasets/<sha256[:16]>/data.csv`: content-addressed, never overwritten.
    """
    def as_labels(value: Any) -> tuple[str, ...]:
        parts = str(value).split(delimiter) if multi_label else [str(value)]
        return tuple(sorted(p.strip() for p in parts if p.strip()))

    seen = {(normalized_key(str(t)), as_labels(y)) for t, y in zip(previous[text_column], previous[label_column])}
    fresh = feedback[[(k, tuple(sorted(ls))) not in seen for k, ls in zip(feedback["key"], feedback["labels"])]]
    added = pd.DataFrame({text_column: fresh["text"].tolist(),
                          label_column: [delimiter.join(ls) if multi_label else ls[0] for ls in fresh["labels"]]})
    version = pd.concat([previous[[text_column, label_column]], added], ignore_index=True)
    data = version.to_csv(index=False).encode()
    sha = hashlib.sha256(data).hexdigest()
    uri = join(root, "datasets", sha[:16], "data.csv")
    write_bytes(uri, data)
    return {"uri": uri, "sha256": sha, "rows": len(version), "previous_rows": len(previous), "added_rows": len(added)}


def fresh_labels(mcfg, data_cfg, feedback: pd.DataFrame) -> pd.DataFrame:
    """Recent feedback plus the optional labelled batch, as `text` + `labels` (lists) rows."""
    from textclf.data import Source, _format_of, read_source, split_labels

    frames = []
    if not feedback.empty:
        since = pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=mcfg.window_days)
        recent = feedback[pd.to_datetime(feedback["timestamp"], utc=True) >= since]
        frames.append(recent.assign(origin="feedback"))
    if mcfg.batch:
        batch = read_source(Source(mcfg.batch, None, data_cfg.format or _format_of(mcfg.batch)), data_cfg).compute()
        frames.append(pd.DataFrame({"text": batch["text"].astype(str),
                                    "labels": [split_labels(v, data_cfg) for v in batch["label"]],
                                    "origin": "batch"}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["text", "labels", "origin"])


def previous_rows(data_cfg) -> tuple[pd.DataFrame, dict[str, str | None]]:
    """The rows a model was trained on, as read from its sources (before cleaning), and the
    sources a new version keeps unchanged: with explicit splits only `train` grows, so val and
    test stay fixed and the gate compares old and new models on the same ground."""
    from textclf.data import read_source, sources

    srcs = [s for s in sources(data_cfg) if s.split in (None, "train")]
    frame = pd.concat([read_source(s, data_cfg).compute() for s in srcs], ignore_index=True)
    kept = {"val": data_cfg.val, "test": data_cfg.test} if data_cfg.train else {}
    return frame[["text", "label"]], kept


def next_training_config(champion_cfg: dict[str, Any], version: dict[str, Any],
                         kept: dict[str, str | None]) -> dict[str, Any]:
    """The champion's resolved config, pointed at the new data version and nothing else changed."""
    cfg = {**champion_cfg, "data": {**champion_cfg["data"], "text_column": "text", "label_column": "label",
                                    "format": None, "revision": None}}
    if kept:
        cfg["data"].update(source=None, train=version["uri"], val=kept["val"], test=kept["test"])
    else:
        cfg["data"].update(source=version["uri"], train=None, val=None, test=None)
    return cfg


def trigger_training(cfg: dict[str, Any], flow_file: str) -> str:
    """Run TrainFlow on `cfg` through the Metaflow Runner API; returns its pathspec."""
    from metaflow import Runner

    with Runner(flow_file, show_output=True, pylint=False, config_value=[("config", cfg)]).run() as running:
        if running.status != "successful":
            raise RuntimeError(f"retraining failed: {running.run.pathspec if running.run else flow_file}\n"
                               f"{running.stderr[-2000:]}")
        return running.run.pathspec


def drift_figure(series: dict[str, list[float]]):
    """Reference vs fresh: prediction confidence and token length, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for ax, what, xlabel in ((axes[0], "confidence", "top-class probability"), (axes[1], "lengths", "tokens")):
        ref, cur = np.asarray(series[f"reference_{what}"]), np.asarray(series[f"fresh_{what}"])
        bins = np.histogram_bin_edges(np.concatenate([ref, cur]) if len(cur) else ref, bins=20)
        ax.hist(ref, bins=bins, density=True, alpha=0.55, label=f"reference (n={len(ref)})")
        ax.hist(cur, bins=bins, density=True, alpha=0.55, label=f"fresh (n={len(cur)})")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("density")
        ax.legend(frameon=False)
    axes[0].set_title("Prediction confidence")
    axes[1].set_title("Text length")
    fig.tight_layout()
    return fig


def report_card(card, assessment: dict[str, Any], champion: dict[str, Any], figure) -> None:
    """The decision first, in one sentence; then the figures behind it."""
    from metaflow.cards import Image, Markdown, Table

    card.append(Markdown(f"# Monitor: {champion['name']} v{champion['version']}\n\n**{assessment['summary']}**"))
    card.append(Markdown(f"Fresh labelled rows: {assessment['n_fresh']} · champion age: "
                         f"{assessment['age_days']:.1f} days · from {champion['run_id']}"))
    rows = [[k, f"{v:.4f}"] for k, v in {**assessment["metrics"], **assessment["drift"]}.items()]
    card.append(Table(rows, headers=["figure", "value"]))
    card.append(Image.from_matplotlib(figure))
