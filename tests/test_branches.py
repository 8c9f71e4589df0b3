"""Where a run of each @project branch writes (textclf.branches): the rules, without a flow."""
from __future__ import annotations

import pytest

from textclf.branches import artifact_root, registered_name, runner_options
from textclf.registry.naming import registered_uri

LOCAL, SHARED = "sqlite:////tmp/mlflow.db", "http://mlflow.example:5000"


@pytest.mark.parametrize(("branch", "tracking", "expected"), [
    ("prod", SHARED, "textclf"),
    ("prod.canary", SHARED, "textclf.prod.canary"),
    ("test.exp", LOCAL, "textclf.test.exp"),
    ("test.exp", SHARED, "textclf.test.exp"),
    ("user.alice", LOCAL, "textclf"),  # nobody else writes this registry
    ("user.alice", SHARED, "textclf.user.alice"),  # a team's server: kept apart from production
    ("", SHARED, "textclf"),  # outside a flow
])
def test_registered_names_follow_the_branch(branch, tracking, expected):
    assert registered_name("textclf", branch, tracking) == expected


def test_a_name_already_on_its_branch_is_not_suffixed_twice():
    """A retraining run is given its champion's resolved config, whose name already carries the branch."""
    assert registered_name("textclf.test.exp", "test.exp", SHARED) == "textclf.test.exp"


def test_a_branch_watches_its_own_champion():
    assert registered_uri("models:/textclf@champion", "test.exp", LOCAL) == "models:/textclf.test.exp@champion"
    assert registered_uri("models:/textclf/3", "prod", SHARED) == "models:/textclf/3"
    assert registered_uri("TrainFlow/12", "test.exp", LOCAL) == "TrainFlow/12"


@pytest.mark.parametrize(("root", "branch", "expected"), [
    ("/data/a", "user.alice", "/data/a"),
    ("gs://b/a", "user.alice", "gs://b/a/user.alice"),
    ("/data/a", "test.exp", "/data/a/test.exp"),
    ("gs://b/a", "prod", "gs://b/a"),
])
def test_artifact_roots_follow_the_branch(root, branch, expected):
    assert artifact_root(root, branch) == expected


@pytest.mark.parametrize(("branch", "options"), [
    ("prod", {"production": True}), ("prod.canary", {"branch": "canary", "production": True}),
    ("test.exp", {"branch": "exp"}), ("user.alice", {}),
])
def test_a_flow_started_by_a_flow_stays_on_its_branch(branch, options):
    assert runner_options(branch) == options
