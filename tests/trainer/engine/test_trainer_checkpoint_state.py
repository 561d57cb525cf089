"""Trainer state is loaded with `torch.load(weights_only=True)`: what we save loads, a
crafted checkpoint cannot run code, and checkpoints saved before the change still load."""

import pickle
import random

import numpy as np
import pytest
import torch

from trainer.checkpoints import STATE_FILE, _numpy_state, load_trainer_state, restore_rng


def test_saved_rng_state_round_trips_through_a_weights_only_load(tmp_path):
    np.random.seed(7)
    random.seed(7)
    torch.manual_seed(7)
    torch.save({"step": 3, "rng": {"torch": torch.get_rng_state(), "numpy": _numpy_state(),
                                   "python": random.getstate(), "cuda": None},
                "data_order": {"seed": 1, "n_train": 4, "batch_size": 2}}, tmp_path / STATE_FILE)
    expected = (np.random.rand(3).tolist(), random.random(), torch.rand(2).tolist())
    np.random.seed(99)
    random.seed(99)
    torch.manual_seed(99)
    state = load_trainer_state(tmp_path)
    restore_rng(state)
    assert (np.random.rand(3).tolist(), random.random(), torch.rand(2).tolist()) == expected
    assert state["step"] == 3 and state["data_order"]["n_train"] == 4


def test_checkpoints_from_before_keep_loading(tmp_path):
    np.random.seed(5)
    torch.save({"step": 1, "rng": {"numpy": np.random.get_state()}}, tmp_path / STATE_FILE)  # old format
    expected = np.random.rand()
    restore_rng(load_trainer_state(tmp_path))
    assert np.random.rand() == expected


class _RunsCode:
    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').write('x')",))


def test_a_crafted_checkpoint_cannot_run_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"step": 1, "payload": _RunsCode()}, tmp_path / STATE_FILE)
    with pytest.raises(pickle.UnpicklingError):
        load_trainer_state(tmp_path)
    assert not (tmp_path / "PWNED").exists()
