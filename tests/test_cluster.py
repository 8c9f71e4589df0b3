"""The cluster rehearsal: TrainFlow and MonitorFlow run as Kubernetes would run them.

Every step runs in a container of the project's own image (built from the Dockerfile), with the
command lines and environment that `argo-workflows create --only-json` compiles, on one Docker
network; gs:// is a GCS emulator and MLflow a tracking server, both reached over that network.
Only the scheduler is simulated (`support/argo_sim.py`). The metadata provider is what the
compiled commands say when no metadata service is configured (`local`, inside each pod): the
steps must not need one.

What this does not prove: the Kubernetes scheduler itself, GPUs, NCCL and bf16.
"""
from __future__ import annotations

import json
import os
import re
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from conftest import SANDBOX, TINY, toy_rows, write_csv
from support.argo_sim import Cluster, Workflow, compile_workflow
from support.container_engine import EngineUnavailable, docker, ensure_engine, project_image
from support.gcs_emulator import SUPPORT_DIR, gcs_emulator
from support.mlflow_server import mlflow_server
from textclf import storage
from textclf.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.rehearsal]

BRANCH = "user.tester"  # deployed without --branch or --production: the user's own @project branch ...
NAME, ROOT = f"textclf.{BRANCH}", f"artifacts/{BRANCH}"  # ... kept apart on a shared MLflow server and gs://
EVENT = f"mfns.textclf.{BRANCH}.textclf.retrain"  # and listening to its own branch's events
# One node, two processes: the reference every other run must reproduce to the bit.
TRAIN = (f"{TINY} train.threads_per_proc=1 train.checkpoint_every_steps=5 train.resources.cpu=2 "
         "train.resources.memory=6000 scoring.memory=6000 data.dask.worker_cpu=2")


@pytest.fixture(scope="module")
def engine():
    try:
        ensure_engine()
    except EngineUnavailable as exc:
        pytest.skip(f"CLUSTER REHEARSAL SKIPPED: no container engine here: {exc}")


@pytest.fixture(scope="module")
def image(engine) -> str:
    return project_image(SANDBOX / "rehearsal-build.log")


@pytest.fixture(scope="module")
def network(engine) -> Iterator[tuple[str, str]]:
    """A Docker network (the cluster's pod network) and its gateway, the host's address on it."""
    name = f"textclf-rehearsal-{uuid.uuid4().hex[:6]}"
    docker("network", "create", name)
    gateway = json.loads(docker("network", "inspect", name).stdout)[0]["IPAM"]["Config"][0]["Gateway"]
    yield name, gateway
    docker("network", "rm", name, check=False)


class Webhook(BaseHTTPRequestHandler):
    """Argo Events' webhook event source, reduced to what it receives."""
    received: list[dict] = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        Webhook.received.append({"path": self.path, "body": json.loads(body or b"{}")})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@dataclass
class Services:
    """The cluster's services, listening on the Docker network's gateway (the host's address on it)."""
    gateway: str
    tracking: str  # the MLflow server
    webhook: str  # Argo Events' webhook
    bucket: str  # gs://<bucket> on the emulator
    emulator: dict[str, str]  # what a process needs to reach the emulator

    def deploy_env(self, image: str) -> dict[str, str]:
        """What docs/gke.md tells a user to set before `argo-workflows create`, pointed here."""
        return {**os.environ, **self.emulator,
                "METAFLOW_DEFAULT_DATASTORE": "gs", "METAFLOW_DATASTORE_SYSROOT_GS": f"{self.bucket}/metaflow",
                "METAFLOW_KUBERNETES_CONTAINER_IMAGE": image, "METAFLOW_KUBERNETES_NAMESPACE": "textclf",
                "METAFLOW_ARGO_EVENTS_EVENT": "metaflow-event",
                "METAFLOW_ARGO_EVENTS_EVENT_SOURCE": "argo-events-webhook",
                "METAFLOW_ARGO_EVENTS_SERVICE_ACCOUNT": "operate-workflow-sa",
                "METAFLOW_ARGO_EVENTS_WEBHOOK_URL": self.webhook,
                "TEXTCLF_ARTIFACT_ROOT": f"{self.bucket}/artifacts", "MLFLOW_TRACKING_URI": self.tracking}


@pytest.fixture(scope="module")
def services(network, tmp_path_factory) -> Iterator[Services]:
    import gcsfs

    _, gateway = network
    root = tmp_path_factory.mktemp("services")
    with gcs_emulator(root / "gcs", host=gateway) as gcs, pytest.MonkeyPatch.context() as mp:
        for key, value in gcs.env().items():  # this process reads and writes the bucket too
            mp.setenv(key, value)
        gcsfs.GCSFileSystem.clear_instance_cache()
        hook = ThreadingHTTPServer((gateway, free_port(gateway)), Webhook)
        threading.Thread(target=hook.serve_forever, daemon=True).start()
        try:
            with mlflow_server(root / "mlflow", gcs.url("mlruns"), host=gateway, env=gcs.env()) as tracking:
                yield Services(gateway=gateway, tracking=tracking, webhook=f"http://{gateway}:{hook.server_port}/",
                               bucket=gcs.url(), emulator=gcs.env())
        finally:
            hook.shutdown()


@pytest.fixture(scope="module")
def cluster(image, network, services, tmp_path_factory) -> Cluster:
    """Every pod also gets the emulator's settings and the test-only Metaflow plugin that reaches it
    anonymously (`support/metaflow_extensions`), as a cluster's pods get Workload Identity."""
    pod_env = {**services.emulator, "PYTHONPATH": "/opt/rehearsal/support",
               "METAFLOW_ARGO_EVENTS_WEBHOOK_URL": services.webhook}
    return Cluster(image=image, network=network[0], workdir=tmp_path_factory.mktemp("pods"), pod_env=pod_env,
                   mounts=[f"{SUPPORT_DIR}:/opt/rehearsal/support:ro"])


@pytest.fixture(scope="module")
def data_uri(services) -> str:
    uri = f"{services.bucket}/data/reviews.csv"
    storage.write_bytes(uri, write_csv(SANDBOX / "rehearsal" / "reviews.csv", toy_rows(320)).read_bytes())
    return uri


def model_weights(model_uri: str) -> dict:
    from safetensors.torch import load

    fs, path = storage.filesystem(storage.join(model_uri, "model.safetensors"))
    return load(fs.cat(path))


def final_weight_hashes(run, cluster: Cluster) -> list[str]:
    """`final weights sha256=...` as every rank printed it at the end of training."""
    return [h for pod in run.pods for h in re.findall(r"final weights sha256=([0-9a-f]{64})", run.log(cluster, pod))]


@pytest.fixture(scope="module")
def trained(cluster, services, image, data_uri):
    """The whole TrainFlow, every step in a container: one node with two processes."""
    workflow = compile_workflow("train_flow.py", f"data.source={data_uri} {TRAIN} train.nproc_per_node=2",
                                services.deploy_env(image))
    return Workflow(workflow, cluster).run()


def test_every_step_runs_in_the_image_and_registers_a_model(trained, services):
    from mlflow import MlflowClient

    assert list(trained.outputs) == ["start", "preprocess", "preprocess-foreach-parallel", "join-train",
                                     "evaluate", "register", "end"]
    root = f"{services.bucket}/{ROOT}/TrainFlow/{trained.run_id}"
    for page in ("evaluate", "error_analysis", "explore_data"):  # the notebooks ran on the image's kernel
        assert storage.exists(f"{root}/reports/{page}.html"), page
    assert storage.read_json(f"{root}/reports/metrics.json")["accuracy"] > 0.8
    client = MlflowClient(services.tracking)
    versions = [v for v in client.search_model_versions(f"name='{NAME}'")
                if v.tags.get("metaflow.pathspec") == f"TrainFlow/{trained.run_id}"]
    assert len(versions) == 1
    assert client.get_model_version_by_alias(NAME, "champion").version == versions[0].version
    assert storage.exists(f"{root}/checkpoints/latest"), "checkpoints are not on durable storage"


@pytest.fixture(scope="module")
def preempted(cluster, services, image, data_uri, trained):
    """Two nodes of one process each; the control pod is killed mid-epoch, after its first checkpoint."""
    workflow = compile_workflow("train_flow.py", f"data.source={data_uri} {TRAIN} train.nproc_per_node=1 "
                                                 "train.resources.num_nodes=2", services.deploy_env(image))
    cluster.preempt = lambda pod, attempt, line: attempt == 0 and "-control-" in pod \
        and "checkpoint step-00000005 saved" in line
    try:
        return Workflow(workflow, cluster).run(stop_after="preprocess-foreach-parallel")
    finally:
        cluster.preempt = None


def test_a_preempted_train_step_resumes_from_its_checkpoint_on_gs(preempted, cluster):
    assert preempted.attempts["train"] == 2, "the killed JobSet was not retried"
    first, retried = [pod for pod in preempted.pods if "-control-" in pod]
    assert "checkpoint step-00000005 saved" in preempted.log(cluster, first)
    assert "final weights" not in preempted.log(cluster, first), "the first attempt was not stopped"
    resumed = re.search(r"resumed from gs://\S+/checkpoints/step-(\d+) \(epoch (\d+), step (\d+)\)",
                        preempted.log(cluster, retried))
    assert resumed, preempted.log(cluster, retried)[-3000:]
    assert int(resumed.group(1)) == int(resumed.group(3)) >= 5, "resumed from step 0, not from the checkpoint"


def test_two_nodes_resumed_end_with_the_weights_of_one_uninterrupted_node(preempted, trained, services):
    one_node = model_weights(f"{services.bucket}/{ROOT}/TrainFlow/{trained.run_id}/model")
    two_nodes = model_weights(f"{services.bucket}/{ROOT}/TrainFlow/{preempted.run_id}/model")
    assert one_node.keys() == two_nodes.keys()
    for key in one_node:
        assert (one_node[key] == two_nodes[key]).all(), key


def test_every_rank_of_every_node_ends_with_the_same_best_weights(preempted, trained, cluster):
    one_node, two_nodes = final_weight_hashes(trained, cluster), final_weight_hashes(preempted, cluster)
    assert len(one_node) == 2 and len(two_nodes) == 2, (one_node, two_nodes)  # two ranks each
    assert set(one_node) == set(two_nodes) and len(set(one_node)) == 1


def test_deployed_monitor_flow_triggers_train_flow_instead_of_running_it(cluster, services, image, trained):
    from mlflow import MlflowClient

    batch = f"{services.bucket}/data/fresh.csv"
    storage.write_bytes(batch, write_csv(SANDBOX / "rehearsal" / "fresh.csv", toy_rows(40, seed=9)).read_bytes())
    client = MlflowClient(services.tracking)
    versions_before = len(client.search_model_versions(f"name='{NAME}'"))
    Webhook.received.clear()
    workflow = compile_workflow("monitor_flow.py", f"monitor.batch={batch} monitor.min_metric=1.01 "
                                                   "monitor.min_labels=5 scoring.memory=6000",
                                services.deploy_env(image))
    Workflow(workflow, cluster).run()
    events = [e["body"] for e in Webhook.received if e["body"].get("name") == EVENT]
    assert len(events) == 1, Webhook.received
    request = json.loads(events[0]["payload"]["retrain_data"])
    assert request["source"].startswith(f"{services.bucket}/{ROOT}/datasets/"), request
    assert storage.exists(request["source"])
    assert len(client.search_model_versions(f"name='{NAME}'")) == versions_before, \
        "MonitorFlow trained a model in its own pod"

    train = compile_workflow("train_flow.py", f"data.source=gs://nowhere/deployed.csv {TRAIN}",
                             services.deploy_env(image))
    assert [t["name"] for t in json.loads(train["metadata"]["annotations"]["metaflow/triggers"])] == [EVENT]
    # What the sensor Metaflow compiles does with the event: start TrainFlow with the payload's field,
    # JSON-encoded (`toRawJson`), as its parameter.
    payload = events[0]["payload"]
    assert re.fullmatch(r"MonitorFlow/argo-\S+", payload["requested_by"]), payload
    run = Workflow(train, cluster).run(parameters={k: json.dumps(payload[k]) for k in ("retrain_data", "requested_by")},
                                       stop_after="preprocess")
    manifest = storage.read_json(f"{services.bucket}/{ROOT}/TrainFlow/{run.run_id}/data/manifest.json")
    assert list(manifest["fingerprint"]["sources"]) == [request["source"]]
    # ... and back: the triggered run's MLflow run names the MonitorFlow run that asked for it.
    linked = client.search_runs([client.get_experiment_by_name("textclf").experiment_id],
                                f"tags.`metaflow.pathspec` = 'TrainFlow/{run.run_id}'")
    assert [(r.data.tags["requested_by"], r.data.tags["metaflow.branch"]) for r in linked] == \
        [(payload["requested_by"], BRANCH)]
