"""The training loop in-process (one rank): resumable to the bit, multi-label, and its sampler."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from sklearn.metrics import f1_score

from conftest import ROOT, SANDBOX, TINY, toy_rows, write_csv
from support.gcs_emulator import gcs  # noqa: F401  (the fixture)
from textclf.config import compose, to_dict
from textclf.evaluation.metrics import multi_hot
from textclf.model.network import build_model
from textclf.model.predictor import Predictor
from textclf.data.preprocess import preprocess
from textclf.training.sampler import BucketBatchSampler
from textclf.training.checkpoints import Checkpoints
from textclf.training.distributed import Dist
from textclf.environment import usable_cpus
from textclf.training import launcher
from textclf.training.launcher import run_paths, threads_per_proc, train_model
from textclf.training.loop import fit, setup, train_step
from textclf.training.objective import EmbeddingAttack, make_loss, positive_weights
from textclf.training.optim import amp_dtype, make_optimizer, native_cpu_bf16


def _spec(tmp_path, manifest, cfg, name: str) -> dict:
    return {"config": to_dict(cfg), "manifest": manifest, "output": str(tmp_path / name / "model"),
            "checkpoint_dir": str(tmp_path / name / "ckpt"), "log_dir": str(tmp_path / name / "logs")}


@pytest.fixture(scope="module")
def toy_setup(tmp_path_factory):
    src = write_csv(SANDBOX / "train-unit" / "toy.csv", toy_rows(160, seed=3))
    cfg = compose(f"data.source={src} {TINY} train.epochs=2 train.checkpoint_every_steps=3 "
                  "data.dask.scheduler_address=sync train.threads_per_proc=1")
    out = tmp_path_factory.mktemp("shards")
    return cfg, preprocess(cfg, str(out))


# --------------------------------------------------------------------------- sampler

@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_sampler_covers_every_row_once_with_equal_batches_per_rank(world_size):
    lengths = np.random.default_rng(0).integers(3, 60, size=101)
    samplers = [BucketBatchSampler(lengths, batch_size=4, world_size=world_size, rank=r, seed=7, bucket_batches=3)
                for r in range(world_size)]
    per_rank = [list(s) for s in samplers]
    assert len({len(batches) for batches in per_rank}) == 1, "ranks must take the same number of steps"
    assert len(per_rank[0]) == len(samplers[0])
    seen = np.concatenate([b for batches in per_rank for b in batches])
    assert set(seen.tolist()) == set(range(101))
    assert len(seen) - 101 < world_size * len(per_rank[0])  # only tail wrap-around repeats rows


def test_sampler_buckets_by_length_and_is_reproducible_per_epoch():
    lengths = np.random.default_rng(1).integers(3, 200, size=512)
    sampler = BucketBatchSampler(lengths, batch_size=16, seed=3, bucket_batches=32)
    batches = list(sampler)
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
    random_spread = np.mean([np.ptp(lengths[np.random.default_rng(i).choice(512, 16)]) for i in range(50)])
    assert spread < random_spread / 4  # padding waste is what bucketing removes
    again = [b.tolist() for b in BucketBatchSampler(lengths, batch_size=16, seed=3, bucket_batches=32)]
    assert again == [b.tolist() for b in batches]
    sampler.epoch = 1
    assert [b.tolist() for b in sampler] != again
    sampler.skip = 5
    assert [b.tolist() for b in sampler] == [b.tolist() for b in list(BucketBatchSampler(
        lengths, batch_size=16, seed=3, bucket_batches=32, epoch=1))[5:]]


# --------------------------------------------------------------------------- the tiny test backbone

BUILD_ON_EVERY_RANK = """
import hashlib, torch, torch.distributed as dist
dist.init_process_group("gloo")
from transformers import AutoModel
from textclf.model.backbones import resolve_backbone
torch.manual_seed(1234)
before = torch.get_rng_state()
model = AutoModel.from_pretrained(resolve_backbone("tiny-bert"))
assert torch.equal(before, torch.get_rng_state()), "building the backbone reset the caller's random state"
print("rank", dist.get_rank(), hashlib.sha256(model.embeddings.word_embeddings.weight.detach().numpy().tobytes()).hexdigest())
"""


def test_ranks_on_a_fresh_machine_build_one_tiny_backbone_and_keep_their_random_state(tmp_path):
    """Every pod starts with an empty cache: ranks building the backbone at once under a process group
    (where transformers' save_pretrained writes nothing on rank 1) must all load the same weights."""
    import subprocess
    import sys

    script = tmp_path / "build.py"
    script.write_text(BUILD_ON_EVERY_RANK)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--standalone",
                           str(script)], env={**os.environ, "TEXTCLF_CACHE": str(tmp_path / "cache")},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    digests = dict(line.split()[1:] for line in done.stdout.splitlines() if line.startswith("rank "))
    assert set(digests) == {"0", "1"} and len(set(digests.values())) == 1, done.stdout


# --------------------------------------------------------------------------- thread budget

def test_trainings_side_by_side_split_the_cores_and_threads_per_proc_wins(monkeypatch):
    monkeypatch.setattr(launcher, "usable_cpus", lambda: 2)
    assert threads_per_proc(0, nproc=1) == 2
    assert threads_per_proc(0, nproc=1, concurrent=2) == 1  # two local TuneFlow trials on 2 cores
    assert threads_per_proc(0, nproc=2, concurrent=2) == 1  # never below one
    assert threads_per_proc(3, nproc=1, concurrent=2) == 3
    monkeypatch.setattr(launcher, "usable_cpus", lambda: 16)
    assert threads_per_proc(0, nproc=2, concurrent=2) == 4


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2,
                    reason="needs affinity masks and two cores")
@pytest.mark.parametrize("cores", [1, 2])
def test_the_thread_budget_is_the_cores_a_process_may_use(cores):
    """taskset, a container's cpuset, a pytest-xdist worker: the mask, not the machine, is the budget."""
    code = "from textclf.training.launcher import threads_per_proc; print(threads_per_proc(0, nproc=1))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          preexec_fn=lambda: os.sched_setaffinity(0, range(cores)))
    assert done.stdout.strip() == str(cores)


def test_local_foreach_branches_share_the_cores_and_kubernetes_pods_keep_theirs(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "flows"))
    from textclf_steps import side_by_side

    monkeypatch.delenv("METAFLOW_KUBERNETES_WORKLOAD", raising=False)
    assert side_by_side(3) == 3
    monkeypatch.setenv("METAFLOW_KUBERNETES_WORKLOAD", "1")
    assert side_by_side(3) == 1


def test_the_launcher_counts_gpus_as_torch_does_without_importing_it():
    """One rank per GPU torch sees (one on a CPU machine), decided in a process that stays torch-free."""
    import subprocess
    import sys

    probe = ("import sys; from textclf.training.launcher import default_nproc; "
             "print(default_nproc(0), default_nproc(3), 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == [str(torch.cuda.device_count() or 1), "3", "False"]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc tunables need glibc")
@pytest.mark.parametrize("keep", [True, False])
def test_ranks_keep_a_freed_gradient_sized_block_for_the_next_step_unless_told_not_to(keep, monkeypatch):
    """In the ranks' environment a freed 64 MB block stays in the heap (no mmap, no trim), so the
    next step's gradient reuses its pages; glibc ignores a tunable out of range without a word, so
    this asks the allocator itself (mallinfo2) what it did."""
    import subprocess
    import sys

    from textclf.training.launcher import rank_env

    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    probe = ("import ctypes, numpy as np\n"
             "class Info(ctypes.Structure): _fields_ = [(f, ctypes.c_size_t) for f in "
             "'arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost'.split()]\n"
             "libc = ctypes.CDLL('libc.so.6'); libc.mallinfo2.restype = Info\n"
             "block = np.ones(8 << 20); mapped = libc.mallinfo2().hblkhd; del block\n"
             "print(mapped >> 20, libc.mallinfo2().arena >> 20)\n")
    env = rank_env(threads=1, keep_freed_memory=keep)
    assert env["OMP_NUM_THREADS"] == "1"
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    mapped_mb, heap_mb_after_free = map(int, done.stdout.split())
    if keep:
        assert mapped_mb == 0 and heap_mb_after_free >= 64, done.stdout
    else:
        assert mapped_mb >= 64 and heap_mb_after_free < 64, done.stdout
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.check=0")
    assert rank_env(threads=1)["GLIBC_TUNABLES"] == "glibc.malloc.check=0"  # the caller's own settings win


def test_the_rank_trains_with_the_threads_the_launcher_chose(toy_setup, tmp_path):
    """Before, the worker set torch's threads to cores / ranks whatever the launcher exported."""
    cfg, manifest = toy_setup
    cfg = replace(cfg, artifact_root=str(tmp_path), train=replace(cfg.train, threads_per_proc=0, epochs=1))
    record = train_model(cfg, manifest, run_paths(cfg, "test", "threads"), concurrent=usable_cpus())
    assert record["threads"] == 1


# --------------------------------------------------------------------------- optimizer

@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="reads the CPU's flags from Linux")
def test_auto_amp_keeps_fp32_on_cpu_and_names_bf16_units_when_the_cpu_has_them(capsys):
    """`auto` never changes a CPU run's numbers by host; it says when `train.amp=bf16` would pay."""
    flags = set(next(l for l in open("/proc/cpuinfo") if l.startswith("flags")).split(":", 1)[1].split())
    native = bool({"avx512_bf16", "amx_tile"} & flags)
    assert native_cpu_bf16() == native
    cpu, tc = torch.device("cpu"), compose("").train
    assert amp_dtype(replace(tc, amp="auto"), cpu) is None
    assert ("train.amp=bf16 trains" in capsys.readouterr().out) == native
    assert amp_dtype(replace(tc, amp="off"), cpu) is None
    assert amp_dtype(replace(tc, amp="bf16"), cpu) == torch.bfloat16


def test_bf16_autocast_trains_on_cpu(toy_setup, tmp_path):
    """`train.amp=bf16` on a CPU (native units or oneDNN's emulation): the loss falls, the weights
    saved are fp32, and the record says bf16."""
    cfg, manifest = toy_setup
    cfg = replace(cfg, train=replace(cfg.train, amp="bf16", epochs=2, checkpoint_every_steps=0))
    result = fit(_spec(tmp_path, manifest, cfg, "bf16"))
    assert result["amp"] == "bfloat16"
    losses = [h["train_loss"] for h in result["history"]]
    assert np.isfinite(losses).all() and losses[-1] < losses[0], losses
    weights = load_file(str(tmp_path / "bf16" / "model" / "model.safetensors"))
    assert {t.dtype for t in weights.values()} == {torch.float32}


def test_layer_decay_slows_each_block_below_the_top():
    cfg = compose(f"data.source=x.csv {TINY} train.lr=1e-3 train.head_lr=5e-3 train.layer_decay=0.5")
    model = build_model(cfg.model.backbone, {0: "negative", 1: "positive"})
    groups = make_optimizer(model, cfg.train).param_groups
    assert groups[0]["lr"] == pytest.approx(1e-3)  # the one the progress bar and the logs show
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    lrs = {name: lr_of[id(p)] for name, p in model.named_parameters()}
    assert model.config.backbone_config.num_hidden_layers == 2
    assert lrs["head.1.weight"] == pytest.approx(5e-3)
    assert lrs["backbone.encoder.layer.1.output.dense.weight"] == pytest.approx(1e-3)
    assert lrs["backbone.encoder.layer.0.attention.self.query.bias"] == pytest.approx(5e-4)
    assert lrs["backbone.embeddings.word_embeddings.weight"] == pytest.approx(2.5e-4)
    assert lrs["backbone.embeddings.LayerNorm.weight"] == pytest.approx(2.5e-4)


def test_fgm_pushes_the_loss_up_and_restores_the_embeddings_exactly():
    torch.manual_seed(0)
    model = build_model(compose(f"data.source=x.csv {TINY}").model.backbone, {0: "negative", 1: "positive"}).eval()
    batch = {"input_ids": torch.randint(5, 200, (8, 12)), "attention_mask": torch.ones(8, 12, dtype=torch.long)}
    y = torch.randint(0, 2, (8,))
    loss = lambda: torch.nn.functional.cross_entropy(model(**batch).logits, y)  # noqa: E731
    attack = EmbeddingAttack(model, eps=1.0)
    clean_weight = attack.weight.detach().clone()
    with attack.perturbed():  # no gradient yet: nothing to follow, nothing moves
        assert torch.equal(attack.weight, clean_weight)
    clean = loss()
    clean.backward()
    with attack.perturbed():
        moved = attack.weight.detach() - clean_weight
        adversarial = loss()
    assert moved.norm().item() == pytest.approx(1.0, rel=1e-4)
    assert adversarial.item() > clean.item() + 1e-3  # up the gradient: the batch got harder
    assert torch.equal(attack.weight, clean_weight)


# --------------------------------------------------------------------------- one training step

def _trainer(tmp_path, toy_setup, name: str, **train):
    cfg, manifest = toy_setup
    cfg = replace(cfg, train=replace(cfg.train, checkpoint_every_steps=0, **train))
    trainer = setup(_spec(tmp_path, manifest, cfg, name))
    return trainer, list(trainer.sampler)


def _weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_train_step_accumulates_then_steps_and_averages_at_the_boundary(toy_setup, tmp_path):
    trainer, batches = _trainer(tmp_path, toy_setup, "accum", grad_accum=2, ema=0.9)
    start, average = _weights(trainer.model), _weights(trainer.ema.module)
    loss = train_step(trainer, batches[0])  # inside the accumulation window
    assert np.isfinite(loss) and loss > 0
    assert (trainer.progress.micro, trainer.progress.step) == (1, 0)
    assert all(torch.equal(v, start[k]) for k, v in trainer.model.state_dict().items()), "stepped too early"
    assert trainer.model.head[-1].weight.grad is not None and trainer.model.head[-1].weight.grad.abs().sum() > 0
    assert all(torch.equal(v, average[k]) for k, v in trainer.ema.module.state_dict().items())
    train_step(trainer, batches[1])  # the boundary
    assert (trainer.progress.micro, trainer.progress.step) == (2, 1)
    assert not torch.equal(trainer.model.head[-1].weight, start["head.1.weight"])
    assert all(p.grad is None for p in trainer.model.parameters()), "gradients must be cleared after the step"
    moved = trainer.ema.module.head[-1].weight
    assert not torch.equal(moved, average["head.1.weight"])
    # The average moved part of the way: between where it was and where the weights are now.
    assert (moved - trainer.model.head[-1].weight).abs().max() < (average["head.1.weight"]
                                                                  - trainer.model.head[-1].weight).abs().max()


def test_train_step_with_fgm_adds_the_adversarial_gradient_and_restores_the_embeddings(toy_setup, tmp_path):
    plain, batches = _trainer(tmp_path, toy_setup, "plain", grad_accum=2, fgm=0.0)
    attacked, same_batches = _trainer(tmp_path, toy_setup, "fgm", grad_accum=2, fgm=0.1)
    assert [b.tolist() for b in batches] == [b.tolist() for b in same_batches]
    clean = attacked.model.get_input_embeddings().weight.detach().clone()
    train_step(plain, batches[0])
    train_step(attacked, batches[0])
    assert torch.equal(attacked.model.get_input_embeddings().weight, clean), "FGM left the embeddings moved"
    g_plain, g_attacked = plain.model.head[-1].weight.grad, attacked.model.head[-1].weight.grad
    assert not torch.allclose(g_plain, g_attacked), "the second (adversarial) backward pass added nothing"


def _grads(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.grad.detach().clone() for k, p in module.named_parameters() if p.grad is not None}


def test_fgm_every_k_attacks_the_kth_micro_batches_only(toy_setup, tmp_path):
    plain, batches = _trainer(tmp_path, toy_setup, "plain-k", grad_accum=4, fgm=0.0)
    sparse, _ = _trainer(tmp_path, toy_setup, "fgm-every-2", grad_accum=4, fgm=0.1, fgm_every=2)
    added = []
    for micro in range(2):  # micro-batch 0 is attacked, 1 is not: compare what each adds to the gradient
        before = [_grads(t.model) for t in (plain, sparse)]
        for t in (plain, sparse):
            torch.manual_seed(micro)  # the same dropout on both sides
            train_step(t, batches[micro])
        added.append([{k: g - b.get(k, 0) for k, g in _grads(t.model).items()} for t, b in zip((plain, sparse), before)])
    assert not torch.allclose(added[0][0]["head.1.weight"], added[0][1]["head.1.weight"]), "micro-batch 0 not attacked"
    for key, grad in added[1][0].items():
        torch.testing.assert_close(added[1][1][key], grad, msg=key)  # micro-batch 1: the clean gradient alone


def test_frozen_word_embeddings_stay_and_the_rest_learns(toy_setup, tmp_path):
    trainer, batches = _trainer(tmp_path, toy_setup, "frozen", freeze_word_embeddings=True)
    words = trainer.model.get_input_embeddings().weight
    start = _weights(trainer.model)
    train_step(trainer, batches[0])
    assert torch.equal(words, start["backbone.embeddings.word_embeddings.weight"])
    assert all(p is not words for g in trainer.optimizer.param_groups for p in g["params"])
    assert not torch.equal(trainer.model.head[-1].weight, start["head.1.weight"])
    assert not torch.equal(trainer.model.backbone.embeddings.position_embeddings.weight,
                           start["backbone.embeddings.position_embeddings.weight"])


@pytest.mark.slow  # Inductor compiles for minutes on 2 cores: the full suite runs it, the developer loop does not
def test_compiled_training_steps_compute_what_eager_ones_do_without_recompiling(toy_setup, tmp_path, monkeypatch):
    """train.compile changes how a step runs, not what it computes: two batches of different padded
    lengths (dynamic shapes: one graph) take the same steps; the model's keys stay as saved."""
    monkeypatch.setattr(torch._inductor.config, "fallback_random", True)  # dropout masks as eager draws them
    eager, batches = _trainer(tmp_path, toy_setup, "eager", compile=False)
    fast, _ = _trainer(tmp_path, toy_setup, "compiled", compile=True)
    widths = [max(len(fast.train.input_ids[i]) for i in b) for b in batches]
    pair = [batches[0], next(b for b, w in zip(batches, widths) if w != widths[0])]
    torch._dynamo.reset()
    for n, idx in enumerate(pair):
        with torch._dynamo.config.patch(error_on_recompile=n > 0):
            for t in (eager, fast):
                torch.manual_seed(n)
                train_step(t, idx)
    assert fast.model.state_dict().keys() == eager.model.state_dict().keys()
    for key, value in eager.model.state_dict().items():
        torch.testing.assert_close(fast.model.state_dict()[key], value, rtol=1e-4, atol=1e-5, msg=key)


# --------------------------------------------------------------------------- resume

@pytest.mark.parametrize("ema, fgm", [(0.0, 0.0), (0.9, 0.0), (0.0, 1.0)], ids=["plain", "ema", "fgm"])
def test_resume_mid_epoch_gives_the_same_weights_as_an_uninterrupted_run(toy_setup, tmp_path, ema, fgm):
    cfg, manifest = toy_setup
    # One epoch with EMA: the saved (best) weights are then the final average.
    cfg = replace(cfg, train=replace(cfg.train, ema=ema, fgm=fgm, epochs=1 if ema else cfg.train.epochs))
    straight = fit(_spec(tmp_path, manifest, cfg, "straight"))
    interrupted = _spec(tmp_path, manifest, cfg, "interrupted")
    assert fit(interrupted, stop_after_steps=3) is None  # preempted mid-epoch 1 (10 steps per epoch)
    resumed = fit(interrupted)
    timeless = lambda history: [{k: v for k, v in r.items() if k != "samples_per_s"} for r in history]  # noqa: E731
    assert timeless(resumed["history"]) == timeless(straight["history"])
    a = load_file(tmp_path / "straight" / "model" / "model.safetensors")
    b = load_file(tmp_path / "interrupted" / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    if ema:  # what was saved is the average, not the last step's weights
        latest = Checkpoints(tmp_path / "straight" / "ckpt", Dist()).latest()
        last = torch.load(latest / "state.pt", weights_only=False)
        assert not torch.equal(a["head.1.weight"], last["model"]["head.1.weight"])
        torch.testing.assert_close(a["head.1.weight"], last["ema"]["module.head.1.weight"], rtol=0, atol=0)


def test_the_temperature_is_fitted_on_the_best_epochs_logits_without_scoring_val_again(toy_setup, tmp_path,
                                                                                        monkeypatch):
    """One validation pass per epoch: `finish` fits T on the logits the best epoch was chosen on. A
    run resumed past that epoch has none in memory and scores val again, to the same T."""
    from textclf.training import loop

    cfg, manifest = toy_setup
    cfg = replace(cfg, train=replace(cfg.train, epochs=2, calibrate=True))
    passes = []
    scored = loop.predict_logits
    monkeypatch.setattr(loop, "predict_logits", lambda *a, **k: passes.append(a[1]) or scored(*a, **k))
    spec = _spec(tmp_path, manifest, cfg, "once")
    first = fit(spec)
    assert len(passes) == 2, "one val pass per epoch, none more in finish"
    passes.clear()
    again = fit(spec)  # resumes from the last checkpoint, after both epochs: only finish is left
    assert len(passes) == 1
    assert again["best_epoch"] == first["best_epoch"]
    for key in ("temperature", "val_ece", "val_ece_uncalibrated"):
        assert again[key] == pytest.approx(first[key], rel=1e-6), key


def test_a_fresh_machine_resumes_from_the_checkpoint_mirrored_on_gs(toy_setup, tmp_path, gcs, capsys):
    """A retried pod has an empty disk: it finds the newest checkpoint, the best weights and the
    training log in the mirror beside the run's artifacts, and ends where an uninterrupted run ends."""
    from textclf import storage

    cfg, manifest = toy_setup
    straight = fit(_spec(tmp_path, manifest, cfg, "straight"))
    mirrors = {"checkpoint_mirror": gcs.url("run", "checkpoints"), "log_mirror": gcs.url("run", "logs", "metrics.jsonl")}
    first = {**_spec(tmp_path, manifest, cfg, "first-pod"), **mirrors}
    assert fit(first, stop_after_steps=12) is None  # epoch 1 ended at step 10 (a best.pt), then preempted
    assert storage.read_text(gcs.url("run", "checkpoints", "latest")).strip() == "step-00000012"
    capsys.readouterr()
    second = {**_spec(tmp_path, manifest, cfg, "second-pod"), **mirrors}
    resumed = fit(second)
    assert f"resumed from {gcs.url('run', 'checkpoints', 'step-00000012')} (epoch 1, step 12)" in capsys.readouterr().out
    a = load_file(tmp_path / "straight" / "model" / "model.safetensors")
    b = load_file(tmp_path / "second-pod" / "model" / "model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert resumed["best_epoch"] == straight["best_epoch"]
    log = [json.loads(line) for line in storage.read_text(mirrors["log_mirror"]).splitlines()]
    assert [r["epoch"] for r in log if r["kind"] == "epoch"] == [1, 2]  # one log across both pods
    assert len({r["step"] for r in log if r["kind"] == "step"}) == len([r for r in log if r["kind"] == "step"])


# --------------------------------------------------------------------------- multi-label

TAGS = {"billing": ["refund", "invoice", "charged twice"], "shipping": ["parcel", "courier", "delivery late"],
        "app_bug": ["crash", "login error", "frozen screen"]}


def _tag_rows(n: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(5)
    names = sorted(TAGS)
    rows = []
    for i in range(n):
        chosen = sorted(rng.choice(names, size=rng.integers(1, 3), replace=False).tolist())
        words = [str(rng.choice(TAGS[t])) for t in chosen]
        rows.append((f"ticket {i}: " + " and ".join(words), "|".join(chosen)))
    return rows


def test_class_weights_give_bce_each_labels_negatives_over_positives():
    labels = [[0], [0, 1], [1], [2]]  # label 3 never occurs: counted as one positive
    weights = torch.tensor([1.0, 1.0, 3.0, 4.0])
    assert torch.equal(positive_weights(labels, 4), weights)
    train = compose(TINY).train
    logits, y = torch.randn(4, 4), torch.from_numpy(multi_hot(labels, 4))
    weighted = make_loss(replace(train, class_weights=True), True, labels, 4)(logits, y)
    assert torch.allclose(weighted, F.binary_cross_entropy_with_logits(logits, y.float(), pos_weight=weights))
    plain = make_loss(replace(train, class_weights=False), True, labels, 4)(logits, y)
    assert torch.allclose(plain, F.binary_cross_entropy_with_logits(logits, y.float()))


def test_multi_label_training_and_prediction(tmp_path):
    src = write_csv(tmp_path / "tags.csv", _tag_rows(240), header=("text", "labels"))
    cfg = compose(f"data=sample_tags data.source={src} {TINY} train.epochs=8 train.early_stopping_patience=3 data.dask.scheduler_address=sync "
                  "train.threads_per_proc=1")
    manifest = preprocess(cfg, str(tmp_path / "shards"))
    assert manifest["multi_label"] and sorted(manifest["id2label"].values()) == sorted(TAGS)
    result = fit(_spec(tmp_path, manifest, cfg, "run"))
    assert 0 < result["threshold"] < 1 and "temperature" not in result  # multi-label keeps T = 1
    assert result["best_val"] > 0.8  # micro-F1; a constant predictor scores about 0.5 here
    best = result["history"][result["best_epoch"] - 1]  # chosen at the threshold it is saved with
    assert best["threshold"] == result["threshold"] and best["val_micro_f1"] == result["best_val"]
    predictor = Predictor(tmp_path / "run" / "model")
    assert predictor.multi_label and predictor.temperature == 1.0
    test = pq.read_table(manifest["shards"]["test"]).to_pydict()
    probs = predictor.predict_proba(test["text"])
    predicted = (probs >= predictor.threshold).astype(int)
    gold = multi_hot(test["label"], len(predictor.labels))
    assert f1_score(gold, predicted, average="micro") > 0.85
