import json
import math

import numpy as np
import torch

from trainer.hooks import JsonlHooks, clean_json


def test_clean_json_makes_strict_json_of_metrics():
    raw = {"a": float("nan"), "b": [math.inf, np.float32(0.5)], "c": torch.tensor(3), 4: (np.int64(2),)}
    cleaned = clean_json(raw)
    assert cleaned == {"a": None, "b": [None, 0.5], "c": 3, "4": [2]}
    json.dumps(cleaned, allow_nan=False)  # raises if anything non-JSON is left


def test_jsonl_hooks_write_strict_json(tmp_path):
    hooks = JsonlHooks(tmp_path)
    hooks.on_step(1, {"train/kl": float("nan"), "train/reward_mean": np.float64(0.25)}, [])
    record = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert record["train/kl"] is None and record["train/reward_mean"] == 0.25
