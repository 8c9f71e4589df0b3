"""The test split sealed until the winner is chosen.

TuneFlow compares candidates on validation only. `sealed` withholds the test shard from the
manifest that preprocessing hands to every trial and fold, so code there that reaches for test
(`manifest["shards"]["test"]`) fails with this rule instead of quietly letting test into the
choice; only the `final` step, after the choice, calls `unsealed`.
"""
from __future__ import annotations

from typing import Any

from textclf.errors import TextclfError

TEST = "test"


class SealedError(TextclfError):
    headline = "Test split sealed"


class SealedShards(dict):
    """A manifest's shards without test; asking for test raises SealedError, not a bare KeyError.
    It pickles (a Metaflow artifact) and serializes to JSON (a training spec) without the test shard."""

    def __init__(self, shards: dict[str, str]):
        super().__init__((k, v) for k, v in shards.items() if k != TEST)
        self._test = shards[TEST]  # for `unsealed` only

    def __missing__(self, key: str) -> Any:
        if key == TEST:
            raise SealedError("the test split is sealed until TuneFlow's final step: candidates are compared on "
                              "validation only, and the chosen one is scored on test once")
        raise KeyError(key)


def sealed(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest with its test shard withheld (see the module's docstring)."""
    return {**manifest, "shards": SealedShards(manifest["shards"])}


def unsealed(manifest: dict[str, Any]) -> dict[str, Any]:
    """The full manifest again: for the final step, once the winner is chosen."""
    shards = manifest["shards"]
    return {**manifest, "shards": {**shards, TEST: shards._test}}
