"""One typed config object: Hydra-composed YAML groups under `config/`, validated by dataclasses.

The same parser serves Metaflow (`Config(..., parser="textclf.config.parse")`, so decorators such
as `@resources(gpu=...)` read it at deploy time), the CLI, notebooks and tests.
"""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from textclf.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = Path(os.environ.get("TEXTCLF_CONFIG_DIR", PROJECT_ROOT / "config"))


@dataclass
class CleanConfig:
    unicode_form: str = "NFKC"
    lowercase: bool = False
    urls: str = "keep"  # keep | replace | remove
    mentions: str = "keep"  # keep | replace | remove
    html: str = "strip"  # strip | keep


@dataclass
class DaskConfig:
    scheduler_address: str | None = None  # an existing cluster; None starts a LocalCluster
    n_workers: int = 2
    threads_per_worker: int = 1
    kubernetes: bool = False
    image: str = "${oc.env:TEXTCLF_IMAGE,${oc.env:METAFLOW_KUBERNETES_CONTAINER_IMAGE,textclf:latest}}"
    # Kubernetes service account of the scheduler and worker pods (GCS access via Workload Identity).
    service_account: str | None = "${oc.env:METAFLOW_KUBERNETES_SERVICE_ACCOUNT,null}"
    worker_cpu: int = 2
    worker_memory: str = "4Gi"
    partition_rows: int = 50_000  # rows per partition of in-memory sources (DVC, Hub)
    # Bytes per partition of a CSV / TSV / JSONL file, cut between records. A worker holds one
    # partition's texts at a time, so this bounds its memory; 4 MB (about 70k short texts) also gives
    # both workers a partition of a 100k-row file. `bench/preprocess.py`, 2026-12-07, 2 cores: 16 MB
    # peaked at 1,091 / 1,362 MB for 100k / 1M rows (x1.25), 8 MB 1,081 / 1,278 (x1.18), 4 MB
    # 1,253 / 1,205 (x0.96), the fastest at both sizes.
    blocksize: int = 4_000_000


@dataclass
class AugmentConfig:
    """EDA-style augmentation of the training split (see textclf.augment); off by default."""
    enabled: bool = False
    copies: int = 1  # augmented copies per training row, each made by one randomly chosen operation
    synonym: float = 0.1  # fraction of words replaced by a lexicon synonym
    insert: float = 0.1  # fraction of words: synonyms inserted at random places
    swap: float = 0.1  # fraction of words: random pairs swapped
    delete: float = 0.1  # probability of deleting each word
    lexicon: str | None = None  # JSON {word: [synonyms, ...]}; None: the packaged English lexicon
    seed: int = 13


@dataclass
class DataConfig:
    source: str | None = MISSING  # one source split automatically; or train/val/test below
    train: str | None = None
    val: str | None = None
    test: str | None = None
    revision: str | None = None  # DVC revision for dvc:// sources
    format: str | None = None  # csv | tsv | jsonl | parquet; None: from the extension
    text_column: str = "text"
    label_column: str = "label"
    multi_label: bool = False
    label_delimiter: str = "|"
    labels: list[str] | None = None  # declared label set; others are an error
    label_names: dict[Any, str] = field(default_factory=dict)  # raw value -> class name, e.g. {0: negative}; others kept
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    min_count: int = 2
    max_bad_fraction: float = 0.01  # isolated bad rows (empty text, missing label) tolerated
    dedupe: bool = True
    clean: CleanConfig = field(default_factory=CleanConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    dask: DaskConfig = field(default_factory=DaskConfig)


@dataclass
class ModelConfig:
    backbone: str = "minilm-l6"
    pooling: str = "mean"  # cls | mean | attention
    head_hidden: list[int] = field(default_factory=list)
    head_dropout: float = 0.1
    head_layernorm: bool = False
    max_length: int = 128


@dataclass
class ResourcesConfig:
    gpu: int = 0
    cpu: int = 2
    memory: int = 8000
    num_nodes: int = 1  # >1: multi-node through @parallel / JobSet


@dataclass
class ScoringConfig:
    """The pods of the steps that load a model and score with it: TrainFlow's evaluate (the
    notebooks) and register (the gate), and MonitorFlow's assess. (The drift profile is scored in
    the train pod, by the rank that trained.)"""
    gpu: int = 0
    cpu: int = 2
    memory: int = 8000


@dataclass
class PredictConfig:
    """Batch predictions over a file: `textclf predict` and PredictFlow."""
    shard_rows: int = 50_000  # texts per shard: one PredictFlow task (a pod) and one part file each
    batch_size: int = 64  # texts per forward pass
    resources: ScoringConfig = field(default_factory=ScoringConfig)  # each shard's pod


@dataclass
class TrainConfig:
    seed: int = 42
    epochs: int = 3
    batch_size: int = 32  # per optimizer step, summed over ranks and accumulation
    eval_batch_size: int = 128
    grad_accum: int = 1
    lr: float = 5e-5
    head_lr: float | None = None  # None: same as lr
    layer_decay: float = 1.0  # <1: layer-wise lr decay: block k below the top (embeddings last) at lr * layer_decay**k
    weight_decay: float = 0.01
    ema: float = 0.0  # >0: evaluate, select and save an exponential moving average of the weights with this decay
    fgm: float = 0.0  # >0: adversarial training: each batch fit again with word embeddings moved this far (L2) up the gradient;
    # absolute, so it follows the backbone's scale: 1.0 for MiniLM/BERT (word rows of norm ~1), 0.1 for tiny-bert (~0.16)
    freeze_word_embeddings: bool = False  # half of MiniLM's weights: no gradient, AdamW or clipping over them
    fgm_every: int = 1  # with fgm: the adversarial pass on every k-th micro-batch only, FGM's extra cost / k
    warmup_ratio: float = 0.06
    scheduler: str = "linear"  # linear | cosine
    max_grad_norm: float = 1.0
    loss: str = "ce"  # ce | focal (single-label); bce for multi-label
    class_weights: bool = False  # single-label: CE weighted by inverse frequency; multi-label: BCE pos_weight = negatives / positives
    label_smoothing: float = 0.0
    focal_gamma: float = 2.0
    amp: str = "auto"  # auto (bf16 on GPUs with bf16 units; fp32 on CPU) | bf16 (also on CPU) | off
    metric: str = "auto"  # model selection: auto = accuracy / micro_f1 (multi-label)
    early_stopping_patience: int = 2
    calibrate: bool = True  # single-label: fit a temperature on val after training (evaluation/calibration.py)
    checkpoint_every_steps: int = 200  # 0: only at epoch ends
    nproc_per_node: int = 0  # 0: one per GPU, else one per two CPU cores
    threads_per_proc: int = 0  # 0: cores / (processes x trainings side by side on this machine)
    bucket_batches: int = 50  # length-bucketing window, in batches
    compile: bool = False  # torch.compile the training forward once, with dynamic shapes (padding varies per batch)
    keep_freed_memory: bool = True  # ranks keep freed memory for reuse (glibc tunables; launcher.rank_env)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 7860
    model: str = "models:/textclf@champion"
    variant: str = "torch"  # torch | onnx | onnx-int8 (exported on load when missing; see bench/serve.py)
    max_texts: int = 64
    max_chars: int = 5000
    # How long the first waiting request is held for company. 0: never held; a batch is what queued while
    # the previous one ran, so concurrent requests still share passes and a lone one pays no wait.
    batch_wait_ms: float = 0.0
    max_batch: int = 32
    poll_seconds: float = 30.0  # how often to ask the registry where the alias points; 0: never
    feedback_root: str = "${artifact_root}/feedback"
    predictions_root: str | None = None  # the prediction log; None: <feedback_root>/predictions
    log_fraction: float = 1.0  # share of predictions logged (feedback links only to logged ones)
    log_texts: bool = True  # keep texts in the log (embedding drift needs them); False: hash and length only
    review_fraction: float = 0.1  # share of logged predictions drawn at random for review (unbiased labels)
    max_csv_rows: int = 10_000  # batch tab: rows per uploaded CSV
    # Limits the OpenAPI schema states and the server enforces (413 / 422, never echoing the input)
    max_body_bytes: int = 2_000_000  # a JSON request body; 64 texts of 5000 characters fit with room
    max_upload_bytes: int = 50_000_000  # a file uploaded to the demo (the batch tab's CSV)
    max_label_chars: int = 200
    max_labels: int = 64  # labels per feedback
    # Host headers answered (others get 400); empty: the loopback names when bound to loopback, else any
    trusted_hosts: list[str] = field(default_factory=list)


@dataclass
class RegistryConfig:
    tracking_uri: str = "sqlite:///.textclf/mlflow.db"
    artifact_location: str = ".textclf/mlruns"
    experiment: str = "textclf"
    model_name: str = "auto"  # auto: textclf, or a name that follows the task (registry/naming.py)
    gate_metric: str = "auto"  # auto = accuracy / micro_f1 (multi-label), as train.metric
    gate_margin: float = 0.0
    golden: str | None = None  # pinned labelled file (path, gs://) the gate decides on; read with data.* settings


@dataclass
class MonitorConfig:
    batch: str | None = None  # an extra labelled batch (same columns as the training data)
    window_days: float = 30.0  # feedback newer than this counts as fresh
    min_labels: int = 20  # fewer unbiased labels (reviewed samples, the batch): no quality verdict
    min_predictions: int = 50  # fewer logged predictions in the window: no drift verdict
    max_predictions: int = 2000  # the most recent logged predictions drift is measured on
    metric: str = "auto"  # auto (accuracy / micro_f1 for multi-label) | accuracy | macro_f1 | micro_f1 | subset_accuracy
    min_metric: float = 0.80
    max_psi: float = 0.25  # lengths and confidence: drift when PSI is over this ...
    drift_alpha: float = 0.01  # ... and their Kolmogorov-Smirnov test is significant at this level
    max_label_shift: float = 0.20  # total variation distance of label shares
    mmd_alpha: float = 0.01  # embedding two-sample test significance
    permutations: int = 200
    max_age_days: float = 30.0  # 0: no age limit
    retrain: bool = True  # False: report only
    # New versions DVC-tracked, pushed and committed in a DVC repo with a default remote; else a CSV
    dvc: bool = True
    schedule: str = "0 6 * * *"  # Argo cron for MonitorFlow (daily)
    # Deployed on Argo, MonitorFlow publishes this Argo Event to retrain, and the TrainFlow deployment
    # is triggered by it (where Argo Events is configured); run locally, it runs TrainFlow itself.
    retrain_event: str = "textclf.retrain"


@dataclass
class SearchParam:
    """One dimension of the search: `choices`, or a range `low`..`high` (integers when both are)."""
    key: str = MISSING  # a dotted train.* or model.* config key
    choices: list[Any] | None = None
    low: Any = None
    high: Any = None
    log: bool = False
    step: Any = None


@dataclass
class TuneConfig:
    """TuneFlow: an Optuna study in rounds of parallel trials (see textclf.tuning)."""
    sampler: str = "tpe"  # tpe | random | grid
    rounds: int = 4  # rounds run one after another; each asks Optuna for new trials
    trials_per_round: int = 2  # trials side by side: one foreach branch (a pod on Kubernetes) each
    max_trials: int = 8  # total budget, at most rounds x trials_per_round
    max_minutes: float = 0.0  # wall-time budget for starting new trials; 0: none
    seed: int = 0
    storage: str | None = None  # an Optuna RDB URL; None: sqlite under the run's artifact folder
    kfold: int = 0  # >1: cross-validate the best config over k folds of train+val
    seeds: int = 1  # trainings per trial (train.seed, +1, ...); the trial's value is their mean validation score
    final_seeds: int = 3  # the winner trained this often, then scored once on test (mean ± std); 0: off
    space: list[SearchParam] = field(default_factory=list)
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)  # named bundles of overrides: a `recipe` dimension


@dataclass
class TextclfConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    artifact_root: str = ".textclf/artifacts"
    branch: str = ""  # the run's Metaflow @project branch, set by the flows (textclf/branches.py)


def _split_overrides(text: str | None) -> tuple[list[str], dict[str, Any]]:
    """Accept a YAML mapping (a partial or full config), a YAML list of overrides, or a line
    of Hydra overrides such as ``data=sst2 train.epochs=2``."""
    if not text or not text.strip():
        return [], {}
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    if isinstance(value, dict):
        overrides = value.pop("overrides", []) or []
        return list(overrides), value
    if isinstance(value, list):
        return [str(v) for v in value], {}
    return shlex.split(text), {}


def _absolute(path: str) -> str:
    return path if "://" in path or os.path.isabs(path) else str(Path(path).resolve())


def compose(text: str | None = None, overrides: list[str] | None = None) -> TextclfConfig:
    """Compose `config/config.yaml`, apply overrides, validate, and return the typed object."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    from textclf.config_checks import check

    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="textclf_schema", node=TextclfConfig)
    text_overrides, mapping = _split_overrides(text)
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
            composed = hydra_compose("config", overrides=text_overrides + list(overrides or []))
        OmegaConf.set_struct(composed.tune.recipes, False)  # Hydra closes every node; recipes are new names
        merged = OmegaConf.merge(OmegaConf.structured(TextclfConfig), composed, mapping)
        OmegaConf.resolve(merged)
        cfg: TextclfConfig = OmegaConf.to_object(merged)
    except (HydraException, OmegaConfBaseException) as exc:
        detail = str(exc).splitlines()[0]
        if exc.__cause__ is not None:
            detail += f" ({str(exc.__cause__).splitlines()[0]})"
        raise ConfigError(detail) from None
    check(cfg)
    cfg.data.label_names = {str(k): v for k, v in cfg.data.label_names.items()}  # YAML keys 0 match read text "0"
    cfg.artifact_root = _absolute(cfg.artifact_root)
    cfg.registry.artifact_location = _absolute(cfg.registry.artifact_location)
    cfg.serve.feedback_root = _absolute(cfg.serve.feedback_root)
    cfg.serve.predictions_root = cfg.serve.predictions_root and _absolute(cfg.serve.predictions_root)
    if cfg.registry.tracking_uri.startswith("sqlite:///") and not cfg.registry.tracking_uri.startswith("sqlite:////"):
        cfg.registry.tracking_uri = "sqlite:///" + _absolute(cfg.registry.tracking_uri[len("sqlite:///"):])
    return cfg


def to_dict(cfg: TextclfConfig) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)


def from_dict(data: Any) -> TextclfConfig:
    """Rebuild the typed object from a resolved dict (a Metaflow ConfigValue, a JSON file)."""
    plain = data.to_dict() if hasattr(data, "to_dict") else dict(data)
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TextclfConfig), plain))


def parse(text: str) -> dict[str, Any]:
    """Metaflow `Config` parser: text in, the resolved config as a plain dict out."""
    return to_dict(compose(text))


def to_yaml(cfg: TextclfConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
