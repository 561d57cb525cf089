"""FSDP (`sharding="fsdp"`): 2 processes with the model sharded between them (torchrun, gloo on
CPU) learn exactly what 1 process with the whole model learns, write the same checkpoint
files, and resume from them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from trainer.cli import main
from trainer.config import ConfigError, TrainConfig

ROOT = Path(__file__).resolve().parents[3]
REWARD_PY = '''
def reward(sample, item):
    return len(set(sample["output_text"])) / 10
'''
COMPARED = ("train/reward_mean", "train/reward_std", "train/loss", "train/grad_norm", "train/entropy", "train/kl",
            "train/groups_kept", "valid/reward_mean", "trained_tokens")

needs_distributed = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")


def _inputs(tmp_path, tiny_model, qa_tasks, **config) -> list[str]:
    (tmp_path / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in qa_tasks))
    (tmp_path / "valid.jsonl").write_text("".join(json.dumps(t) + "\n" for t in qa_tasks[:3]))
    (tmp_path / "reward.py").write_text(REWARD_PY)
    # beta > 0: the reference model (a sharded copy for full tuning, the adapters off for LoRA) is used too
    (tmp_path / "run.json").write_text(json.dumps({
        "base_model": str(tiny_model), "learning_rate": 1e-3, "batch_size": 4, "group_size": 4, "beta": 0.05,
        "max_completion_tokens": 6, "eval_interval": 1, "samples_per_step": 16, "mask_truncated_completions": False,
        "num_threads": 1, "seed": 5, **config}))
    return ["run", "--config", str(tmp_path / "run.json"), "--tasks", str(tmp_path / "tasks.jsonl"),
            "--valid", str(tmp_path / "valid.jsonl"), "--grader", f"{tmp_path / 'reward.py'}:reward"]


def _torchrun(args: list[str]) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "trainer", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _checkpoint(out: Path, step: int) -> Path:
    return out / "checkpoints" / f"step-{step:06d}"


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    name = "model.safetensors" if (checkpoint / "model.safetensors").is_file() else "adapter_model.safetensors"
    return load_file(str(checkpoint / name))


def _assert_same_checkpoint(sharded: Path, whole: Path) -> None:
    """The same files, the same tensors under the same names, the same optimizer state layout."""
    assert sorted(p.name for p in sharded.iterdir()) == sorted(p.name for p in whole.iterdir())
    w_sharded, w_whole = _weights(sharded), _weights(whole)
    assert w_sharded.keys() == w_whole.keys()
    for name, w in w_whole.items():
        assert w_sharded[name].shape == w.shape and w_sharded[name].dtype == w.dtype, name
        assert torch.allclose(w_sharded[name], w, atol=1e-5), name
    o_sharded = torch.load(sharded / "trainer_state.pt", weights_only=True)["optimizer"]
    o_whole = torch.load(whole / "trainer_state.pt", weights_only=True)["optimizer"]
    assert o_sharded["param_groups"] == o_whole["param_groups"]
    assert o_sharded["state"].keys() == o_whole["state"].keys() and o_whole["state"]
    for i, state in o_whole["state"].items():
        assert o_sharded["state"][i].keys() == state.keys()
        for key, value in state.items():
            assert o_sharded["state"][i][key].shape == value.shape, (i, key)
            assert torch.allclose(o_sharded["state"][i][key].float(), value.float(), atol=1e-6), (i, key)


def _assert_same_steps(sharded: Path, whole: Path, steps: int) -> None:
    m_sharded, m_whole = _metrics(sharded), _metrics(whole)
    assert [m["step"] for m in m_sharded] == [m["step"] for m in m_whole] == list(range(1, steps + 1))
    for got, want in zip(m_sharded, m_whole, strict=True):
        for key in COMPARED:
            assert got[key] == pytest.approx(want[key], abs=1e-4), (got["step"], key)
        assert want["train/loss"] != 0 and want["train/no_signal"] == 0.0
    samples = [json.loads(line)["output_text"] for line in (whole / "samples.jsonl").read_text().splitlines()]
    assert [json.loads(line)["output_text"] for line in (sharded / "samples.jsonl").read_text().splitlines()] == samples


@needs_distributed
def test_fsdp_full_tuning_learns_what_one_process_learns_and_resumes(tiny_model, tmp_path, qa_tasks):
    args = _inputs(tmp_path, tiny_model, qa_tasks, method="full", max_steps=2)
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    # the sharded run pauses before its first step (a checkpoint without optimizer state), then resumes
    (tmp_path / "fsdp").mkdir()
    (tmp_path / "fsdp" / "STOP").write_text("pause")
    _torchrun([*args, "--sharding", "fsdp", "--out", str(tmp_path / "fsdp")])
    assert json.loads((tmp_path / "fsdp" / "result.json").read_text())["status"] == "paused"
    (tmp_path / "fsdp" / "STOP").unlink()
    _torchrun([*args, "--sharding", "fsdp", "--out", str(tmp_path / "fsdp"), "--resume", str(_checkpoint(tmp_path / "fsdp", 0))])

    _assert_same_steps(tmp_path / "fsdp", tmp_path / "one", steps=2)
    events = (tmp_path / "fsdp" / "events.jsonl").read_text()
    assert "on 2 processes (cpu, FSDP)" in events
    # a real update (equal weights would also follow from no update at all), the same on both
    base = load_file(str(tiny_model / "model.safetensors"))
    one_step_1 = _weights(_checkpoint(tmp_path / "one", 1))
    assert any(not torch.equal(one_step_1[k].float(), base[k].float()) for k in base)
    for step in (1, 2):
        _assert_same_checkpoint(_checkpoint(tmp_path / "fsdp", step), _checkpoint(tmp_path / "one", step))

    # resume the sharded run from its own step-1 checkpoint: the step-2 update is the uninterrupted one's
    _torchrun([*args, "--sharding", "fsdp", "--out", str(tmp_path / "resumed"),
               "--resume", str(_checkpoint(tmp_path / "fsdp", 1))])
    resumed = _metrics(tmp_path / "resumed")
    assert [m["step"] for m in resumed] == [2]
    assert resumed[0]["train/loss"] == pytest.approx(_metrics(tmp_path / "one")[1]["train/loss"], abs=1e-4)
    _assert_same_checkpoint(_checkpoint(tmp_path / "resumed", 2), _checkpoint(tmp_path / "one", 2))
    # and one process without sharding resumes from it too: the files are the non-sharded ones
    assert main([*args, "--out", str(tmp_path / "resumed-one"), "--resume", str(_checkpoint(tmp_path / "fsdp", 1))]) == 0
    _assert_same_checkpoint(_checkpoint(tmp_path / "resumed-one", 2), _checkpoint(tmp_path / "one", 2))


@needs_distributed
def test_fsdp_lora_with_micro_batches_and_two_iterations_learns_what_one_process_learns(tiny_model, tmp_path, qa_tasks):
    # two passes over the batch (the second must see the first's update), in micro-batches, recomputing activations
    args = _inputs(tmp_path, tiny_model, qa_tasks, method="lora", learning_rate=1e-2, max_steps=1, num_iterations=2,
                   micro_batch_size=2, gradient_checkpointing=True)
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    _torchrun([*args, "--sharding", "fsdp", "--out", str(tmp_path / "fsdp")])

    _assert_same_steps(tmp_path / "fsdp", tmp_path / "one", steps=1)
    checkpoint = _checkpoint(tmp_path / "fsdp", 1)
    assert (checkpoint / "adapter_model.safetensors").is_file() and not (checkpoint / "model.safetensors").exists()
    weights = _weights(checkpoint)
    assert any(w.abs().sum() > 0 for name, w in weights.items() if "lora_B" in name)  # the adapters learned
    _assert_same_checkpoint(checkpoint, _checkpoint(tmp_path / "one", 1))


def test_fsdp_in_one_process_is_refused_saying_how_to_launch(tiny_model, tmp_path, qa_tasks, capsys):
    args = _inputs(tmp_path, tiny_model, qa_tasks, method="full", max_steps=1)
    assert main([*args, "--sharding", "fsdp", "--out", str(tmp_path / "one")]) == 2
    err = capsys.readouterr().err
    assert "sharding='fsdp'" in err and "one process" in err and "torchrun --nproc-per-node" in err
    assert not (tmp_path / "one" / "checkpoints").exists()


def test_sharding_settings_are_validated():
    with pytest.raises(ConfigError, match="sharding must be one of none, fsdp"):
        TrainConfig(sharding="zero3")
    with pytest.raises(ConfigError, match="sharding='fsdp' does not support dtype float16"):
        TrainConfig(sharding="fsdp", dtype="float16")
    with pytest.raises(ConfigError, match="not mps"):
        TrainConfig(sharding="fsdp", device="mps")
    assert TrainConfig(sharding="fsdp", dtype="bfloat16").sharding == "fsdp"


PROBE = Path(__file__).with_name("fsdp_probe.py")


def _probe(mode: str, out: Path, *args: str) -> list[dict]:
    """Run fsdp_probe.py under torchrun (2 processes); each process's record."""
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(PROBE), mode, str(out), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads((out / f"probe-{rank}.json").read_text()) for rank in range(2)]


@needs_distributed
def test_fsdp_holds_one_layer_whole_at_a_time_even_with_fewer_tasks_than_processes(tmp_path, qa_tasks):
    """Each decoder layer is gathered only while it runs: when a layer starts, no other layer of
    the policy is whole (beyond one a backward prefetches), in sampling and in the update; the
    gradients are shards at every optimizer step. One task per step and one validation task
    for two processes: process 1 samples nothing and trains on a masked dummy group, in lockstep
    with process 0, and the run (two iterations over each batch: the whole root is refreshed
    after each optimizer step) still learns what one process learns."""
    from tests.trainer.engine.conftest import make_tiny_model

    model = make_tiny_model(tmp_path / "model", layers=4)
    args = _inputs(tmp_path, model, qa_tasks, method="full", batch_size=1, max_steps=2, micro_batch_size=1,
                   num_iterations=2)
    (tmp_path / "valid.jsonl").write_text(json.dumps(qa_tasks[0]) + "\n")
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    probes = _probe("train", tmp_path / "probe", "--", *args, "--sharding", "fsdp", "--out", str(tmp_path / "fsdp"))

    _assert_same_steps(tmp_path / "fsdp", tmp_path / "one", steps=2)
    _assert_same_checkpoint(_checkpoint(tmp_path / "fsdp", 2), _checkpoint(tmp_path / "one", 2))
    for probe in probes:
        assert probe["code"] == 0
        # the gather-everything design held all 3 other layers whole through every phase
        assert probe["max_other_layers_whole"]["no_grad"] == 0, probe
        assert probe["max_other_layers_whole"]["update"] <= 1, probe
        assert probe["forward_order_left"] == 0  # phases without backward leave no record behind
        assert len(probe["steps"]) == 4  # two optimizer steps (iterations) per training step, on both
        for step in probe["steps"]:
            assert step["grads"] > 0 and step["sharded_grads"] == step["grads"] and step["whole_layers"] == 0, step
    # the same forwards on both processes (FSDP's collectives line up), though process 1 had no task
    assert probes[0]["layer_forwards"] == probes[1]["layer_forwards"] > 0


@needs_distributed
def test_sharded_generation_keeps_processes_in_step_with_uneven_answers(tiny_model, tmp_path):
    """Process 0's answers all end at their first token while process 1's run to the limit, then
    process 1 has no prompt at all: both make the same forwards, and every completion is the
    one the unsharded model samples from the same seed."""
    from trainer.models import load_model
    from trainer.rollout import generate

    probes = _probe("generate", tmp_path / "probe", str(tiny_model))
    model, tokenizer = load_model(str(tiny_model), device=torch.device("cpu"), dtype=torch.float32)
    model.eval()
    for name in ("uneven_ends", "no_tasks"):
        assert probes[0][name]["forwards"] == probes[1][name]["forwards"] == 9, name  # prefill + 8 steps
        for probe in probes:
            call = probe[name]
            if not call["prompts"]:
                assert call["completions"] == []
                continue
            want = generate(model, call["prompts"], group_size=2, max_new_tokens=9, eos_ids=set(call["eos_ids"]),
                            pad_id=tokenizer.pad_token_id, temperature=1.0, seeds=call["seeds"])
            want = [[t for t, m in zip(ids, mask, strict=True) if m]
                    for ids, mask in zip(want.completion_ids.tolist(), want.completion_mask.tolist(), strict=True)]
            assert call["completions"] == want, name
    lengths = {rank: [len(c) for c in probes[rank]["uneven_ends"]["completions"]] for rank in (0, 1)}
    assert lengths == {0: [1, 1, 1, 1], 1: [9, 9, 9, 9]}
