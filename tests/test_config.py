"""The typed config: Hydra composition, overrides in three shapes, clear errors."""
from __future__ import annotations

import pytest

from textclf.config import compose, from_dict, parse, to_dict, to_yaml
from textclf.errors import ConfigError


def test_defaults_compose_to_the_embedded_sample():
    cfg = compose()
    assert cfg.data.source == "data/sample/reviews.csv"
    assert cfg.model.backbone == "minilm-l6"
    assert cfg.artifact_root.endswith("artifacts") and cfg.artifact_root.startswith("/")


@pytest.mark.parametrize("data", ["sample_tags", "goemotions"])
def test_multi_label_data_brings_the_multi_label_recipe_and_the_command_line_still_wins(data):
    cfg = compose(f"data={data}")
    assert cfg.data.multi_label and cfg.data.label_delimiter == "|"
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.head_lr) == (compose("train=multilabel").train.epochs, 16, 2e-3)
    assert compose(f"data={data} train=default").train.head_lr is None
    assert compose(f"data={data} train.epochs=4").train.epochs == 4


@pytest.mark.parametrize("text", [
    "data=sst2 train.epochs=2",
    "- data=sst2\n- train.epochs=2",
    "overrides: [data=sst2]\ntrain: {epochs: 2}",
])
def test_overrides_as_line_list_or_mapping(text):
    cfg = compose(text)
    assert cfg.data.text_column == "sentence"
    assert cfg.data.train.endswith("sst2/train.tsv")
    assert cfg.train.epochs == 2


def test_round_trip_through_a_plain_dict():
    cfg = compose("model.head_hidden=[32,16] train.lr=1e-4")
    again = from_dict(parse(to_yaml(cfg)))
    assert to_dict(again) == to_dict(cfg)
    assert again.model.head_hidden == [32, 16]


@pytest.mark.parametrize("text, fragment", [
    ("train.epochs=abc", "train.epochs"),
    ("data=nosuch", "data/nosuch"),
    ("train.nosuch=1", "nosuch"),
    ("model.pooling=max", "model.pooling"),
    ("data.val_fraction=0.6 data.test_fraction=0.5", "val_fraction"),
    ("data.source=null", "data.source"),
    ("train.layer_decay=0", "train.layer_decay must be in (0, 1]"),
    ("train.layer_decay=1.5", "train.layer_decay must be in (0, 1]"),
    ("train.ema=1", "train.ema must be in [0, 1)"),
    ("train.fgm=-1", "train.fgm must be >= 0"),
    ("train.fgm_every=0", "train.fgm_every must be >= 1"),
    ("train.fgm=1 train.freeze_word_embeddings=true", "not with train.freeze_word_embeddings"),
])
def test_bad_config_names_the_key(text, fragment):
    with pytest.raises(ConfigError) as err:
        compose(text)
    assert fragment in str(err.value)
