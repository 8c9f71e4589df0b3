"""What every flow shares: library errors as clean step failures, and the run's typed config.

It lives beside the flows, not in the library, because it is Metaflow glue, and because Metaflow
ships the module of a user step decorator in every code package: here it travels with the flows,
while textclf itself comes from the image.

    @textclf_steps
    class TrainFlow(FlowSpec):
        ...

Library errors (`textclf.errors`) are plain ValueErrors and know nothing of Metaflow. Every
step of a flow marked `@textclf_steps` runs under `clean_failures`, which turns them into a
Metaflow failure that prints one line (the headline and the message, no traceback); any other
exception still fails the step with its traceback, as a bug should. The same wrapper applies the
offline, telemetry-free defaults before the step's own code runs.
"""
from __future__ import annotations

import os
from typing import Any

from metaflow import FlowMutator, current, namespaced_event_name, trigger, user_step_decorator
from metaflow.exception import MetaflowException
from metaflow.metaflow_config import ARGO_EVENTS_EVENT

from textclf.config import TextclfConfig, from_dict
from textclf.environment import apply_defaults
from textclf.errors import TextclfError


class StepFailed(MetaflowException):
    """A library error, shown by Metaflow as `<headline>: <message>` without a traceback."""

    def __init__(self, error: TextclfError):
        self.headline = error.headline
        super().__init__(str(error))


@user_step_decorator
def clean_failures(step_name: str, flow: Any, inputs: Any = None, attributes: Any = None):
    apply_defaults()
    try:
        yield
    except TextclfError as exc:
        close_mlflow_run(flow, step_name, inputs)
        raise StepFailed(exc) from None
    except Exception:
        close_mlflow_run(flow, step_name, inputs)
        raise


def close_mlflow_run(flow: Any, step_name: str, inputs: Any) -> None:
    """A failed last attempt ends the flow's MLflow run (`mlflow_run_id`, once the start step opened
    it) FAILED, where the step runs (a pod needs no Metaflow metadata service for it); an attempt
    that @retry will repeat leaves it open. An interrupted run is ended KILLED by the flows' exit
    hook (`textclf.registry.tracking.end_stopped_run`): Ctrl-C never reaches a step decorator."""
    retries = next((int(d.attributes["times"]) for d in getattr(flow, step_name).decorators if d.name == "retry"), 0)
    if current.retry_count < retries:
        return
    source = inputs[0] if inputs else flow
    run_id, cfg = getattr(source, "mlflow_run_id", None), getattr(source, "cfg", None)
    if run_id and cfg:
        from textclf.registry.tracking import end_run

        try:
            end_run(cfg, run_id, "FAILED")
        except Exception as exc:  # the tracking server is the step's second problem, not its first
            print(f"warning: could not mark MLflow run {run_id} FAILED: {exc}", flush=True)


class textclf_steps(FlowMutator):  # noqa: N801  (used as a class decorator, like Metaflow's own)
    """Run every step of the flow under `clean_failures`."""

    def pre_mutate(self, mutable_flow) -> None:
        for _name, step in mutable_flow.steps:
            step.add_decorator(clean_failures)


class retrained_by_monitor(FlowMutator):  # noqa: N801
    """Where Argo Events is configured (`METAFLOW_ARGO_EVENTS_EVENT`), the deployment is also
    triggered by `monitor.retrain_event` as MonitorFlow on the same @project branch publishes it
    (`mfns.textclf.<branch>.<event>`: a test branch's monitor never retrains production); the
    event's `retrain_data` and `requested_by` become the flow's parameters of those names.
    Elsewhere (locally, or a cluster without Argo Events) nothing changes."""

    def pre_mutate(self, mutable_flow) -> None:
        if not ARGO_EVENTS_EVENT:
            return
        event = dict(mutable_flow.configs)["config"]["monitor"]["retrain_event"]
        mutable_flow.add_decorator(trigger, deco_kwargs={"event": {
            "name": namespaced_event_name(event),
            "parameters": {"retrain_data": "retrain_data", "requested_by": "requested_by"}}})


def name_single_node_gang(flow: Any) -> None:
    """On Kubernetes, Metaflow 2.19 names the tasks of a @parallel gang only when it has more
    than one node (`kubernetes_decorator.task_pre_step`), so a one-node gang fails after its work
    is done ("Flow TrainFlow has no attribute '_control_mapper_tasks'"; found by the cluster
    rehearsal). A gang that was not named is named here: its one task is the only mapper."""
    try:
        flow._control_mapper_tasks
    except AttributeError:
        flow._control_mapper_tasks = [f"{current.run_id}/{current.step_name}/{current.task_id}"]


def side_by_side(branches: int) -> int:
    """How many of a foreach's `branches` share this machine's cores: all of them on a local run
    (Metaflow's local runtime starts up to `--max-workers`, 16 by default, tasks at once), one in a
    Kubernetes pod (each has its own `@resources`, so nothing changes there)."""
    return 1 if "METAFLOW_KUBERNETES_WORKLOAD" in os.environ else max(1, branches)


def run_config(flow: Any) -> dict[str, Any]:
    """What a start step stores as `cfg`: the config given to the run, on the run's @project branch."""
    return {**flow.config.to_dict(), "branch": current.branch_name}


def settings(flow: Any) -> TextclfConfig:
    """The run's resolved config (the `cfg` artifact of the start step) as the typed object."""
    return from_dict(flow.cfg)
