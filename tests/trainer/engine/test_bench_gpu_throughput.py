"""bench/gpu_throughput.py starts and prints its figures (tiny shapes on CPU; the real ones on a GPU)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_gpu_throughput_bench_runs_on_small_shapes(tmp_path):
    out = tmp_path / "figures.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_throughput.py"), "--shapes", "tiny", "--steps",
                           "1", "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES=""))
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert [(r["shape"], r["method"]) for r in results] == [("tiny", "lora"), ("tiny", "full")]
    for r in results:
        assert r["sampling_tokens_per_s"] > 0 and r["training_tokens_per_s"] > 0 and r["training_peak_gib"] > 0
    assert results[0]["trainable"] < results[1]["trainable"] == results[1]["params"]
    assert "sample tok/s" in proc.stdout and "tiny" in proc.stdout
