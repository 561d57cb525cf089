"""GRPO trainer: pure Python + torch + transformers (never imports Django).

Public API::

    from trainer import train, preflight, TrainConfig, Tasks, Hooks
    result = train(TrainConfig(base_model="smollm2-135m-instruct"), Tasks(train=rows), grader, hooks)
    result = train(config, tasks, grader, hooks, resume_from="runs/x/checkpoints/step-000010")
    checks = preflight(config, tasks, grader)   # references, prompt lengths, first answers

`hooks` receives, per step, `on_step` then (when it saved one) `on_checkpoint`, then
`on_checkpoint_removed` for each pruned checkpoint; `on_event` at any time; `should_stop`
between steps (see `trainer.hooks`).

The heavy modules (torch, transformers) load on first use, so `import trainer` stays cheap
for the web app.
"""

from __future__ import annotations

import os
from importlib import import_module

# Before torch loads: idle OpenMP threads sleep instead of spinning. On shared cores spinning
# threads made sampling 10-25x slower (see README, "Training speed").
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_EXPORTS = {
    "TrainConfig": "trainer.config",
    "ConfigError": "trainer.config",
    "config_from_openai_hyperparameters": "trainer.config",
    "Hooks": "trainer.hooks",
    "JsonlHooks": "trainer.hooks",
    "train": "trainer.loop",
    "Tasks": "trainer.loop",
    "TaskError": "trainer.loop",
    "TrainResult": "trainer.loop",
    "preflight": "trainer.launch_checks",
    "BUILTIN_MODELS": "trainer.models",
    "ModelLoadError": "trainer.models",
    "load_model": "trainer.models",
    "resolve_model": "trainer.models",
    "checkpoint_export_zip": "trainer.checkpoints",
    "best_checkpoint": "trainer.checkpoints",
    "list_checkpoints": "trainer.checkpoints",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'trainer' has no attribute {name!r}")
