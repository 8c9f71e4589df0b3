"""Runs a WorkflowTemplate that `argo-workflows create --only-json` compiled, every pod a container.

Only the scheduler is simulated: this walks the DAG in dependency order, fills in the Argo
expressions (`{{workflow.name}}`, `{{inputs.parameters.x}}`, `{{tasks.t.outputs.parameters.p}}`,
`{{item}}`, `{{retries}}`, `{{=sprig...}}`), and starts each pod's container with exactly the
command, environment, resource limits and volumes the template gives it; output parameters are
read from the files the pod writes under /mnt/out, as Argo does. A `resource` template (the
JobSet of a multi-node step) becomes one container per replica, on one Docker network where the
control pod answers to the DNS name the JobSet gives it. A failed template with a
`retryStrategy` runs again with `{{retries}}` raised, as Argo's controller would.
"""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import yaml

PLACEHOLDER = re.compile(r"\{\{\s*(=?)(.*?)\s*\}\}")
# A hook may preempt a pod: called with (pod name, attempt, log line); True kills the pod.
Preempt = Callable[[str, int, str], bool]


class TemplateFailed(RuntimeError):
    pass


class _Stop(Exception):
    """The run was asked to stop after a task (`Workflow.run(stop_after=...)`)."""


def compile_workflow(flow: str, overrides: str, env: dict[str, str], options: tuple[str, ...] = ()) -> dict[str, Any]:
    """`python flows/<flow> [options] --config-value config '<overrides>' argo-workflows create --only-json`
    (`options`: top-level ones, e.g. `--production`)."""
    root = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, str(root / "flows" / flow), "--no-pylint", *options, "--config-value", "config", overrides,
           "argo-workflows", "create", "--only-json"]
    done = subprocess.run(cmd, cwd=root, env={**os.environ, **env}, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{flow} did not compile:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


class _Params(dict):
    """`inputs.parameters.x` and `inputs.parameters['x']` in Argo's expression language."""

    def __getattr__(self, name: str) -> Any:
        return self[name]


class _Sprig:
    int = staticmethod(lambda v: int(float(v)))
    sub = staticmethod(lambda a, b: a - b)
    add = staticmethod(lambda a, b: a + b)


def _expression(text: str, scope: dict[str, str]) -> str:
    def parameters(of: str) -> type:
        found = _Params({k.split(".", 2)[2]: v for k, v in scope.items() if k.startswith(f"{of}.parameters.")})
        return type(of, (), {"parameters": found})

    namespace = {"sprig": _Sprig, "asInt": lambda v: int(float(v)),
                 "toBase64": lambda v: base64.b64encode(str(v).encode()).decode(),
                 "inputs": parameters("inputs"), "workflow": parameters("workflow")}
    return str(eval(text, {"__builtins__": {}}, namespace))  # noqa: S307  (compiled templates, test only)


def fill(text: str, scope: dict[str, str]) -> str:
    """Argo's substitution of `{{name}}` and `{{=expression}}` in one string."""
    def one(match: re.Match) -> str:
        is_expr, body = match.group(1), match.group(2)
        if is_expr:
            return _expression(body, scope)
        if body not in scope:
            raise KeyError(f"no value for {{{{{body}}}}}")
        return scope[body]
    return PLACEHOLDER.sub(one, text)


@dataclass
class Pod:
    name: str
    command: list[str]
    env: dict[str, str]
    cpus: float | None = None
    memory: str | None = None
    tmpfs: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)


@dataclass
class Cluster:
    """Where pods run: the image, a Docker network, what every pod gets besides its template
    (the emulator settings of a test bucket), and a folder for outputs and logs."""
    image: str
    network: str
    workdir: Path
    pod_env: dict[str, str] = field(default_factory=dict)
    mounts: list[str] = field(default_factory=list)  # docker -v specs, e.g. test-only plugins
    preempt: Preempt | None = None
    pods: list[str] = field(default_factory=list)  # every pod started, in order

    def run_pods(self, pods: list[Pod], attempt: int) -> tuple[int, dict[str, Path]]:
        """Start the pods together (a JobSet gang, or one pod), wait for all; the first failure
        fails them all. Returns the worst exit status and each pod's /mnt/out folder."""
        outs, procs, logs = {}, {}, {}
        for pod in pods:
            outs[pod.name] = self.workdir / "out" / pod.name
            outs[pod.name].mkdir(parents=True, exist_ok=True)
            outs[pod.name].chmod(0o777)  # the image runs as an unprivileged user
            logs[pod.name] = self.workdir / "logs" / f"{pod.name}.log"
            logs[pod.name].parent.mkdir(parents=True, exist_ok=True)
            procs[pod.name] = self._start(pod, outs[pod.name], logs[pod.name])
            self.pods.append(pod.name)
        watchers = [threading.Thread(target=self._watch, args=(name, attempt, logs[name], procs), daemon=True)
                    for name in procs]
        for w in watchers:
            w.start()
        status = 0
        pending = dict(procs)
        while pending:
            for name, proc in list(pending.items()):
                code = proc.poll()
                if code is None:
                    continue
                del pending[name]
                status = status or code
                if code != 0:  # the gang fails together, as a JobSet with its default failure policy
                    for other in pending:
                        subprocess.run(["docker", "kill", other], capture_output=True)
            time.sleep(0.5)
        if not os.environ.get("REHEARSAL_KEEP_PODS"):  # set it to inspect pods after a run
            for name in procs:
                subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        return status, outs

    def _start(self, pod: Pod, out: Path, log: Path) -> subprocess.Popen:
        args = ["docker", "run", "--name", pod.name, "--hostname", pod.name[:63], "--network", self.network,
                "-v", f"{out}:/mnt/out", "--shm-size", "1g"]
        for alias in pod.aliases:
            args += ["--network-alias", alias]
        for path in pod.tmpfs:
            args += ["--tmpfs", f"{path}:rw,exec,mode=1777"]
        if pod.cpus:
            args += ["--cpus", str(pod.cpus)]
        if pod.memory:
            args += ["--memory", pod.memory]
        for mount in self.mounts:
            args += ["-v", mount]
        for key, value in {**pod.env, **self.pod_env}.items():
            args += ["-e", f"{key}={value}"]
        return subprocess.Popen([*args, self.image, *pod.command], stdout=log.open("w"), stderr=subprocess.STDOUT)

    def _watch(self, name: str, attempt: int, log: Path, procs: dict[str, subprocess.Popen]) -> None:
        """Follow a pod's log; kill it when the preemption hook says so."""
        if self.preempt is None:
            return
        seen = 0
        while procs[name].poll() is None:
            text = log.read_text(errors="replace") if log.exists() else ""
            for line in text[seen:].splitlines():
                if self.preempt(name, attempt, line):
                    subprocess.run(["docker", "kill", name], capture_output=True)
                    return
            seen = len(text)
            time.sleep(0.5)


@dataclass
class WorkflowRun:
    name: str
    run_id: str  # the Metaflow run id: argo-<workflow name>
    outputs: dict[str, dict[str, str]]  # top-level task name -> output parameters
    attempts: dict[str, int]  # template name -> attempts it took
    pods: list[str]  # the pods it started, in order

    def log(self, cluster: "Cluster", pod: str) -> str:
        return (cluster.workdir / "logs" / f"{pod}.log").read_text(errors="replace")


class Workflow:
    """One compiled WorkflowTemplate, run once per `run()` on a Cluster."""

    def __init__(self, template: dict[str, Any], cluster: Cluster):
        self.spec = template["spec"]
        self.templates = {t["name"]: t for t in self.spec["templates"]}
        self.cluster = cluster

    def run(self, parameters: dict[str, str] | None = None, stop_after: str | None = None) -> WorkflowRun:
        """Run the workflow (as its sensor or `argo submit` would, with `parameters`); with
        `stop_after`, stop once that top-level task has succeeded."""
        name = f"{self.spec['entrypoint'].lower()}-{uuid.uuid4().hex[:6]}"
        scope = {"workflow.name": name,
                 "workflow.creationTimestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        for p in self.spec.get("arguments", {}).get("parameters", []):
            scope[f"workflow.parameters.{p['name']}"] = (parameters or {}).get(p["name"], p.get("value", ""))
        self.attempts: dict[str, int] = {}
        self.stop_after, self.done = stop_after, {}
        first = len(self.cluster.pods)
        try:
            self._dag(self.templates[self.spec["entrypoint"]], scope, prefix=f"{name}-")
        except _Stop:
            pass
        return WorkflowRun(name=name, run_id=f"argo-{name}", outputs=self.done, attempts=self.attempts,
                           pods=self.cluster.pods[first:])

    # ---------------------------------------------------------------- templates

    def _invoke(self, template: dict, task: dict, scope: dict[str, str], pod_name: str) -> dict[str, str]:
        """Run the template a DAG task names (with its retries); returns its output parameters.
        The task's arguments are filled per attempt: `{{retries}}` in them is that attempt's number."""
        limit = int(template.get("retryStrategy", {}).get("limit", 0))
        for attempt in range(limit + 1):
            self.attempts[template["name"]] = attempt + 1
            args = {p["name"]: fill(str(p.get("value", "")), {**scope, "retries": str(attempt)})
                    for p in task.get("arguments", {}).get("parameters", [])}
            attempt_scope = {**{k: v for k, v in scope.items() if k.startswith("workflow.")},
                             **{f"inputs.parameters.{k}": v for k, v in args.items()}, "retries": str(attempt)}
            try:
                if "dag" in template:
                    return self._dag(template, attempt_scope, prefix=f"{pod_name}-")
                if "resource" in template:
                    return self._jobset(template, attempt_scope, attempt)
                return self._container(template, attempt_scope, f"{pod_name}-{attempt}", attempt)
            except TemplateFailed:
                if attempt == limit:
                    raise
        raise AssertionError("unreachable")

    def _dag(self, template: dict, scope: dict[str, str], prefix: str) -> dict[str, str]:
        tasks = {t["name"]: t for t in template["dag"]["tasks"]}
        done: dict[str, dict[str, str]] = {}
        while len(done) < len(tasks):
            ready = [t for n, t in tasks.items() if n not in done
                     and all(d in done for d in re.findall(r"([\w-]+)\.Succeeded", t.get("depends", "") or ""))]
            if not ready:
                raise TemplateFailed(f"DAG {template['name']} cannot proceed: {sorted(set(tasks) - set(done))}")
            for task in ready:
                task_scope = {**scope, **{f"tasks.{t}.outputs.parameters.{k}": v
                                          for t, outs in done.items() for k, v in outs.items()}}
                items = json.loads(fill(task["withParam"], task_scope)) if "withParam" in task else [None]
                for item in items:
                    item_scope = {**task_scope, **({"item": str(item)} if item is not None else {})}
                    done[task["name"]] = self._invoke(self.templates[task["template"]], task, item_scope,
                                                      f"{prefix}{task['name']}")
                if template["name"] == self.spec["entrypoint"]:
                    self.done[task["name"]] = done[task["name"]]
                    if task["name"] == self.stop_after:
                        raise _Stop()
        outputs = {}
        for p in template.get("outputs", {}).get("parameters", []):
            ref = p["valueFrom"]["parameter"]
            outputs[p["name"]] = fill(ref, {f"tasks.{t}.outputs.parameters.{k}": v
                                            for t, outs in done.items() for k, v in outs.items()})
        return outputs

    def _container(self, template: dict, scope: dict[str, str], pod_name: str, attempt: int) -> dict[str, str]:
        pod = self._pod(template["container"], scope, pod_name, template.get("volumes", []), index=None)
        status, outs = self.cluster.run_pods([pod], attempt)
        if status != 0:
            raise TemplateFailed(f"{template['name']}: pod {pod_name} exited with {status}")
        return {p["name"]: (outs[pod.name] / Path(p["valueFrom"]["path"]).name).read_text().strip()
                for p in template.get("outputs", {}).get("parameters", [])}

    def _jobset(self, template: dict, scope: dict[str, str], attempt: int) -> dict[str, str]:
        manifest = yaml.safe_load(fill(template["resource"]["manifest"], scope))
        name = manifest["metadata"]["name"]
        pods = []
        for job in manifest["spec"]["replicatedJobs"]:
            pod_spec = job["template"]["spec"]["template"]["spec"]
            for index in range(int(job["replicas"])):
                pod_name = f"{name}-{job['name']}-{index}-0"
                pod = self._pod(pod_spec["containers"][0], scope, pod_name, pod_spec.get("volumes", []), index=index)
                # The DNS names Kubernetes gives a JobSet pod: hostname, hostname.subdomain, and the FQDN.
                subdomain = pod_spec.get("subdomain") or name
                namespace = job["template"].get("metadata", {}).get("namespace", "default")
                pod.aliases = [pod_name, f"{pod_name}.{subdomain}", f"{pod_name}.{subdomain}.{namespace}.svc.cluster.local"]
                pods.append(pod)
        status, _ = self.cluster.run_pods(pods, attempt)
        if status != 0:
            raise TemplateFailed(f"{template['name']}: JobSet {name} failed ({status})")
        labels = manifest["metadata"].get("labels", {})
        return {p["name"]: str(labels[re.fullmatch(r"\{\.metadata\.labels\.(.+)\}", p["valueFrom"]["jsonPath"]).group(1)])
                for p in template.get("outputs", {}).get("parameters", [])}

    def _pod(self, container: dict, scope: dict[str, str], name: str, volumes: list[dict], index: int | None) -> Pod:
        if any("gpu" in k for k in container.get("resources", {}).get("limits", {})
               if int(float(container["resources"]["limits"][k] or 0)) > 0):
            raise TemplateFailed(f"{name} asks for GPUs, which this rehearsal cannot give")
        fields = {"metadata.name": name, "metadata.namespace": "textclf", "metadata.uid": str(uuid.uuid4()),
                  "spec.nodeName": "rehearsal", "status.podIP": "0.0.0.0", "status.hostIP": "0.0.0.0",
                  "metadata.annotations['jobset.sigs.k8s.io/job-index']": str(index or 0),
                  "metadata.annotations['jobset.sigs.k8s.io/restart-attempt']": "0"}
        env = {}
        for e in container.get("env", []):
            if "value" in e:
                env[e["name"]] = fill(str(e["value"] if e["value"] is not None else ""), scope)
            elif "fieldRef" in e.get("valueFrom", {}):
                env[e["name"]] = fields.get(e["valueFrom"]["fieldRef"]["fieldPath"], "")
        memory_volumes = {v["name"] for v in volumes if "emptyDir" in v}
        tmpfs = [m["mountPath"] for m in container.get("volumeMounts", [])
                 if m["name"] in memory_volumes and m["mountPath"] not in ("/mnt/out", "/dev/shm")]
        resources = container.get("resources", {})
        limits = {**resources.get("requests", {}), **resources.get("limits", {})}
        memory = limits.get("memory")
        return Pod(name=name, command=[fill(c, scope) for c in container["command"]], env=env,
                   cpus=float(limits["cpu"]) if limits.get("cpu") else None,
                   memory=f"{int(float(memory.rstrip('M')))}m" if memory and memory.endswith("M") else None,
                   tmpfs=tmpfs)
