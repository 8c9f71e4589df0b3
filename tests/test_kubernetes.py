"""The Kubernetes path without a cluster: `argo-workflows create --only-json` for every flow against
the emulator's gs:// datastore, and the Dask KubeCluster spec.

What a cluster would run is fully decided here: the pod specs (GPU limits, CPU, memory, image,
namespace, service account, tolerations), the JobSet of the multi-node train step, the code
package (uploaded to the gs:// datastore) and the resolved config inside it.
"""
from __future__ import annotations

import io
import json
import os
import tarfile

import pytest
import yaml

from conftest import ROOT
from support.argo_sim import compile_workflow
from support.gcs_emulator import gcs  # noqa: F401  (the fixture)

FLOWS = sorted(p.name for p in (ROOT / "flows").glob("*_flow.py"))
IMAGE = "europe-west4-docker.pkg.dev/acme-ml/textclf/textclf:0.1.0"
TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
TRAIN = "train.resources.gpu=2 train.resources.cpu=8 train.resources.memory=30000 train.resources.num_nodes=2"


def deploy_env(gcs) -> dict[str, str]:
    """What `docs/gke.md` tells a user to set (Metaflow reads METAFLOW_*, textclf reads the rest)."""
    return {
        **os.environ, **gcs.env(),
        "METAFLOW_DEFAULT_DATASTORE": "gs",
        "METAFLOW_DATASTORE_SYSROOT_GS": gcs.url("metaflow"),
        "METAFLOW_KUBERNETES_CONTAINER_IMAGE": IMAGE,
        "METAFLOW_KUBERNETES_NAMESPACE": "textclf",
        "METAFLOW_KUBERNETES_SERVICE_ACCOUNT": "textclf-runner",
        "METAFLOW_KUBERNETES_GPU_VENDOR": "nvidia",
        "METAFLOW_KUBERNETES_TOLERATIONS": json.dumps(TOLERATIONS),
        "TEXTCLF_ARTIFACT_ROOT": gcs.url("artifacts"),
        "TEXTCLF_MLFLOW_ARTIFACTS": gcs.url("mlruns"),
        "MLFLOW_TRACKING_URI": "http://mlflow.textclf.svc.cluster.local:5000",
    }


def compile_flow(gcs, flow: str, overrides: str = "", options: tuple[str, ...] = (), **env: str) -> dict:
    return compile_workflow(flow, overrides, {**deploy_env(gcs), **env}, options)


def templates(workflow: dict) -> dict[str, dict]:
    return {t["name"]: t for t in workflow["spec"]["templates"]}


def jobset(template: dict) -> dict:
    """The JobSet manifest of a @parallel step. Its Argo expressions `{{x}}` are not YAML where
    they stand unquoted, so they are read as `<<x>>`."""
    return yaml.safe_load(template["resource"]["manifest"].replace("{{", "<<").replace("}}", ">>"))


def env_of(container: dict) -> dict[str, str | None]:
    return {e["name"]: e.get("value") for e in container["env"]}


def packaged_config(workflow: dict) -> dict:
    """The resolved textclf config inside the code package the pods download from gs://."""
    from textclf import storage

    container = next(t["container"] for t in workflow["spec"]["templates"] if "container" in t
                     and "METAFLOW_CODE_URL" in env_of(t["container"]))
    fs, path = storage.filesystem(env_of(container)["METAFLOW_CODE_URL"])
    with tarfile.open(fileobj=io.BytesIO(fs.cat(path))) as tar:
        meta = json.load(tar.extractfile(".mf_meta/CONFIG"))
        names = tar.getnames()
    value = meta["user_configs"]["config"]
    return {"config": value[0] if isinstance(value, list) else value, "files": names}


@pytest.fixture(scope="module")
def train_workflow(gcs) -> dict:
    return compile_flow(gcs, "train_flow.py", TRAIN)


@pytest.mark.parametrize("flow", FLOWS)
def test_every_flow_compiles_to_argo_on_the_gs_datastore(gcs, flow):
    workflow = compile_flow(gcs, flow)
    assert workflow["kind"] == "WorkflowTemplate"
    assert workflow["metadata"]["namespace"] == "textclf"
    pods = [t for t in workflow["spec"]["templates"] if "container" in t]
    assert pods
    for t in pods:
        assert t["container"]["image"] == IMAGE, t["name"]
        assert t["serviceAccountName"] == "textclf-runner", t["name"]
        env = env_of(t["container"])
        assert env["METAFLOW_DEFAULT_DATASTORE"] == "gs"
        if t["name"] == "error-msg-capture-hook":
            continue
        assert env["METAFLOW_CODE_URL"].startswith(gcs.url("metaflow") + "/")
        if not t["name"].startswith("error-"):  # exit hooks find the run through the metadata service
            assert env["METAFLOW_DATASTORE_SYSROOT_GS"] == gcs.url("metaflow")


def test_train_step_is_a_gpu_jobset_with_the_configured_nodes(gcs, train_workflow):
    by_name = templates(train_workflow)
    spec = jobset(by_name["train"])
    assert spec["kind"] == "JobSet"
    jobs = {job["name"]: job for job in spec["spec"]["replicatedJobs"]}
    assert set(jobs) == {"control", "worker"} and jobs["control"]["replicas"] == 1
    # Workers = num_parallel - 1, where num_parallel is what the preprocess step hands to `next`.
    assert jobs["worker"]["replicas"] == "<<=asInt(inputs.parameters.workerCount)>>"
    gang = by_name["preprocess-foreach-parallel"]["dag"]["tasks"][0]["arguments"]["parameters"]
    worker_count = next(p["value"] for p in gang if p["name"] == "workerCount")
    assert "sprig.sub(sprig.int(inputs.parameters['num-parallel']),1)" in worker_count
    assert any(p["name"] == "num-parallel" for p in by_name["preprocess"]["outputs"]["parameters"])

    for name, job in jobs.items():
        pod = job["template"]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["image"] == IMAGE
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "2", name
        assert float(container["resources"]["requests"]["cpu"]) == 8
        assert container["resources"]["requests"]["memory"] == "30000.0M"
        assert pod["serviceAccountName"] == "textclf-runner"
        assert pod["tolerations"] == TOLERATIONS
        assert job["template"]["metadata"]["namespace"] == "textclf"
        env = env_of(container)
        assert env["MF_WORLD_SIZE"] == "<<inputs.parameters.num-parallel>>"  # ranks find each other
        assert env["MF_MASTER_ADDR"].startswith("<<inputs.parameters.jobset-name>>-control-0-0.")
        assert env["METAFLOW_DEFAULT_DATASTORE"] == "gs"


def test_only_the_train_step_asks_for_gpus(train_workflow):
    by_name = templates(train_workflow)
    for name in ("start", "preprocess", "join-train", "evaluate", "register", "end"):
        resources = by_name[name]["container"]["resources"]
        assert int(resources.get("limits", {}).get("nvidia.com/gpu", 0)) == 0, name
    assert float(by_name["preprocess"]["container"]["resources"]["requests"]["cpu"]) == 2  # data.dask.worker_cpu


def test_steps_that_load_a_model_get_the_scoring_resources(gcs):
    by_name = templates(compile_flow(gcs, "train_flow.py", "scoring.gpu=1 scoring.cpu=6 scoring.memory=24000"))
    for name in ("evaluate", "register"):
        resources = by_name[name]["container"]["resources"]
        assert resources["limits"]["nvidia.com/gpu"] == "1", name
        assert float(resources["requests"]["cpu"]) == 6 and resources["requests"]["memory"] == "24000.0M", name
    for name in ("start", "join-train"):  # join_train only gathers the gang's result: the train pod scored
        assert int(by_name[name]["container"]["resources"].get("limits", {}).get("nvidia.com/gpu", 0)) == 0, name
    monitor = templates(compile_flow(gcs, "monitor_flow.py", "scoring.gpu=1"))
    assert monitor["assess"]["container"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    predict = templates(compile_flow(gcs, "predict_flow.py", "predict.resources.gpu=1 predict.resources.cpu=6"))
    assert predict["score"]["container"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert float(predict["score"]["container"]["resources"]["requests"]["cpu"]) == 6


def test_retries_where_a_second_attempt_is_safe(train_workflow):
    """A preempted train gang starts again (and resumes from its checkpoint); register, which would
    register the model twice, and start, which opens the MLflow run, are not retried."""
    by_name = templates(train_workflow)
    for name in ("preprocess", "train", "join-train", "evaluate", "end"):
        assert by_name[name]["retryStrategy"]["limit"] == 2, name
    for name in ("start", "register"):
        assert "retryStrategy" not in by_name[name], name


ARGO_EVENTS = {"METAFLOW_ARGO_EVENTS_EVENT": "metaflow-event", "METAFLOW_ARGO_EVENTS_EVENT_SOURCE": "argo-events-webhook",
               "METAFLOW_ARGO_EVENTS_SERVICE_ACCOUNT": "operate-workflow-sa",
               "METAFLOW_ARGO_EVENTS_WEBHOOK_URL": "http://argo-events-webhook-eventsource-svc.argo-events:12000/metaflow-event"}


def test_train_flow_deployment_is_triggered_by_the_retrain_event_where_argo_events_is_configured(gcs):
    """Each @project branch's deployment listens to its own branch's event: a test branch's
    MonitorFlow never retrains production. Deployed names carry the branch too."""
    for options, branch in (((), "user.tester"), (("--production",), "prod"), (("--branch", "exp"), "test.exp")):
        workflow = compile_flow(gcs, "train_flow.py", "monitor.retrain_event=acme.retrain", options, **ARGO_EVENTS)
        assert json.loads(workflow["metadata"]["annotations"]["metaflow/triggers"]) == [
            {"name": f"mfns.textclf.{branch}.acme.retrain", "type": "event"}]
        assert workflow["metadata"]["name"] == f"textclf.{branch}.trainflow"
        assert {"retrain_data", "requested_by"} <= {p["name"] for p in workflow["spec"]["arguments"]["parameters"]}
    plain = compile_flow(gcs, "train_flow.py")  # no Argo Events: a deployment that only runs when asked
    assert "metaflow/triggers" not in plain["metadata"]["annotations"]


def test_pods_get_the_resolved_config_with_gs_and_mlflow_settings(gcs, train_workflow):
    """Pods read settings from the config resolved at deploy time, shipped in the code package."""
    package = packaged_config(train_workflow)
    cfg = package["config"]
    assert cfg["train"]["resources"] == {"gpu": 2, "cpu": 8, "memory": 30000, "num_nodes": 2}
    assert cfg["artifact_root"] == gcs.url("artifacts")
    assert cfg["registry"]["artifact_location"] == gcs.url("mlruns")
    assert cfg["registry"]["tracking_uri"] == "http://mlflow.textclf.svc.cluster.local:5000"
    assert cfg["serve"]["feedback_root"] == gcs.url("artifacts", "feedback")
    assert cfg["data"]["dask"]["image"] == IMAGE  # Dask pods run the same image
    assert cfg["data"]["dask"]["service_account"] == "textclf-runner"
    # textclf itself comes from the image (Dask workers need it there too), not the code package.
    assert "train_flow.py" in package["files"]
    assert not any("textclf/" in name for name in package["files"])


@pytest.mark.skipif("monitor_flow.py" not in FLOWS, reason="no MonitorFlow")
def test_monitor_flow_is_scheduled(gcs):
    workflow = compile_flow(gcs, "monitor_flow.py", "monitor.schedule='30 5 * * 1'")
    cron = json.loads(workflow["metadata"]["annotations"]["metaflow/cron"])
    assert cron["schedule"] == "30 5 * * 1"


def test_dask_kube_cluster_spec():
    """`data.dask.kubernetes=true`: the operator's DaskCluster resource, built without a cluster."""
    from textclf.config import compose
    from textclf.data.preprocess import kube_cluster_spec

    cfg = compose(f"data.dask.kubernetes=true data.dask.image={IMAGE} data.dask.n_workers=6 "
                  "data.dask.worker_cpu=4 data.dask.worker_memory=16Gi data.dask.service_account=textclf-runner")
    spec = kube_cluster_spec(cfg.data.dask)
    assert spec["kind"] == "DaskCluster" and spec["metadata"]["name"] == "textclf-preprocess"
    worker = spec["spec"]["worker"]
    assert worker["replicas"] == 6
    container = worker["spec"]["containers"][0]
    assert container["image"] == IMAGE
    assert container["resources"]["limits"] == {"cpu": "4", "memory": "16Gi"}
    assert container["resources"]["requests"] == {"cpu": "4", "memory": "16Gi"}
    assert container["args"][:2] == ["dask", "worker"]
    scheduler = spec["spec"]["scheduler"]["spec"]
    assert scheduler["containers"][0]["image"] == IMAGE
    assert worker["spec"]["serviceAccountName"] == scheduler["serviceAccountName"] == "textclf-runner"
    assert "serviceAccountName" not in kube_cluster_spec(compose("data.dask.service_account=null").data.dask)[
        "spec"]["worker"]["spec"]
