"""Data parallel: 2 processes (torchrun, gloo on CPU) learn exactly what 1 process learns."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from trainer.cli import main

ROOT = Path(__file__).resolve().parents[3]
REWARD_PY = '''
def reward(sample, item):
    return len(set(sample["output_text"])) / 10
'''


def _write_inputs(tmp_path, tiny_model, qa_tasks):
    (tmp_path / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in qa_tasks))
    (tmp_path / "valid.jsonl").write_text("".join(json.dumps(t) + "\n" for t in qa_tasks[:3]))
    (tmp_path / "reward.py").write_text(REWARD_PY)
    (tmp_path / "run.json").write_text(json.dumps({
        "base_model": str(tiny_model), "method": "full", "learning_rate": 1e-3, "batch_size": 4, "group_size": 4,
        "max_completion_tokens": 6, "max_steps": 1, "eval_interval": 1, "samples_per_step": 16,
        "mask_truncated_completions": False, "num_threads": 1, "seed": 5}))
    return ["run", "--config", str(tmp_path / "run.json"), "--tasks", str(tmp_path / "tasks.jsonl"),
            "--valid", str(tmp_path / "valid.jsonl"), "--grader", f"{tmp_path / 'reward.py'}:reward"]


def _read(out: Path):
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    weights = load_file(str(out / "checkpoints" / "step-000001" / "model.safetensors"))
    return metrics[0], samples, weights


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")
def test_two_processes_equal_one_process(tiny_model, tmp_path, qa_tasks):
    args = _write_inputs(tmp_path, tiny_model, qa_tasks)
    assert main([*args, "--out", str(tmp_path / "one")]) == 0

    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "trainer", *args, "--out", str(tmp_path / "two")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    one, one_samples, one_weights = _read(tmp_path / "one")
    two, two_samples, two_weights = _read(tmp_path / "two")
    # the same rollouts (every completion, in order) and grades
    assert [s["output_text"] for s in two_samples] == [s["output_text"] for s in one_samples]
    assert len([s for s in one_samples if s["split"] == "train"]) == 16
    for key in ("train/reward_mean", "train/reward_std", "train/loss", "train/grad_norm", "train/entropy",
                "train/groups_sampled", "train/groups_kept", "valid/reward_mean", "trained_tokens"):
        assert two[key] == pytest.approx(one[key], abs=1e-4), key
    assert one["train/loss"] != 0 and one["train/no_signal"] == 0.0
    # the same update, and a real one (equal weights would also follow from no update at all)
    base = load_file(str(tiny_model / "model.safetensors"))
    assert any(not torch.equal(one_weights[k].float(), base[k].float()) for k in base)
    for name, w in one_weights.items():
        assert torch.allclose(two_weights[name], w, atol=1e-5), name
    # process 0 alone wrote the logs: one line per step, a result file
    assert len((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) == 1
    assert json.loads((tmp_path / "two" / "result.json").read_text())["status"] == "succeeded"
    events = (tmp_path / "two" / "events.jsonl").read_text()
    assert "on 2 processes (cpu)" in events
