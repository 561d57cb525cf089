"""Checkpoints: one folder per saved step, best-k retention, resume, and zip export.

A checkpoint folder `<output_dir>/checkpoints/step-000042/` holds:

- `adapter_model.safetensors` + `adapter_config.json` (LoRA, loadable with PEFT on the base
  model) or `model.safetensors` + `config.json` (full fine-tuning, a complete HF model);
- the tokenizer files (with the chat template), so the folder is self-contained;
- `train_config.json`: the run's `TrainConfig` (named so as not to clash with HF's config.json);
- `trainer_state.pt`: optimizer, scheduler and RNG states, step, data order, best-so-far;
- `metrics.json`: the step's metrics (validation reward included when it was evaluated).
"""

from __future__ import annotations

import json
import math
import random
import shutil
import zipfile
from pathlib import Path

import numpy as np

from trainer.hooks import clean_json

STATE_FILE = "trainer_state.pt"
METRICS_FILE = "metrics.json"
CONFIG_FILE = "train_config.json"


def checkpoint_dir(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / "checkpoints" / f"step-{step:06d}"


def save_checkpoint(path: Path, *, model, tokenizer, optimizer, scheduler, step: int,
                    config_dict: dict, metrics: dict, extra_state: dict, model_state: dict | None = None,
                    optimizer_state: dict | None = None) -> Path:
    """Write a checkpoint atomically (a temp folder renamed into place).

    `model_state`/`optimizer_state`: full state dicts to write instead of the model's and the
    optimizer's own (a sharded run gathers them first, see `trainer.sharding`)."""
    import torch  # on first use: the web side imports this module for its names

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    # PEFT: adapter only; else full weights
    model.save_pretrained(tmp, safe_serialization=True, **({"state_dict": model_state} if model_state else {}))
    tokenizer.save_pretrained(tmp)
    (tmp / CONFIG_FILE).write_text(json.dumps(config_dict, indent=2))
    (tmp / METRICS_FILE).write_text(json.dumps(clean_json(metrics), indent=2))
    torch.save({
        "step": step,
        "optimizer": optimizer_state if optimizer_state is not None else optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "numpy": _numpy_state(),
                "python": random.getstate(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
        **extra_state,
    }, tmp / STATE_FILE)
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return path


def load_trainer_state(path: str | Path) -> dict:
    """The trainer state, read with `weights_only=True`: tensors and plain Python values
    only, so a crafted checkpoint cannot run code when it is loaded (a full unpickle can).

    Checkpoints written before the numpy RNG state was stored as plain values hold a numpy
    array; those four numpy types are allowed explicitly, nothing else.
    """
    import torch

    path = Path(path)
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(f"{path} is not a checkpoint: {STATE_FILE} is missing")
    core = getattr(np, "_core", None) or np.core  # numpy 2 renamed it
    legacy = [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]
    with torch.serialization.safe_globals(legacy):
        return torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)


def _numpy_state() -> dict:
    """numpy's global RNG state as plain values (a weights-only load accepts no arrays)."""
    import torch

    name, keys, position, has_gauss, cached = np.random.get_state()
    return {"bit_generator": name, "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(position), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def _set_numpy_state(state) -> None:
    if isinstance(state, dict):
        keys = state["keys"].numpy().astype(np.uint32)
        state = (state["bit_generator"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"])
    np.random.set_state(state)


def load_weights(model, path: str | Path) -> None:
    """Load a checkpoint's trained weights into `model` (PEFT-wrapped for LoRA runs)."""
    from safetensors.torch import load_file

    path = Path(path)
    if (path / "adapter_model.safetensors").is_file():
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, load_file(str(path / "adapter_model.safetensors")))
    elif (path / "model.safetensors").is_file():
        state = load_file(str(path / "model.safetensors"))
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if "lm_head" not in k]  # tied to the embeddings
        if missing or unexpected:
            raise RuntimeError(f"checkpoint {path} does not match the model: missing {missing[:3]}, "
                               f"unexpected {unexpected[:3]}")
        if getattr(model.config, "tie_word_embeddings", False):
            model.tie_weights()
    else:
        raise FileNotFoundError(f"{path} has no adapter_model.safetensors or model.safetensors")


def restore_rng(state: dict) -> None:
    import torch

    rng = state.get("rng") or {}
    if "torch" in rng:
        torch.set_rng_state(rng["torch"])
    if "numpy" in rng:
        _set_numpy_state(rng["numpy"])
    if "python" in rng:
        random.setstate(rng["python"])
    if rng.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def list_checkpoints(output_dir: str | Path) -> list[tuple[int, Path, dict]]:
    """(step, path, metrics) of every complete checkpoint, oldest first."""
    root = Path(output_dir) / "checkpoints"
    found = []
    for path in sorted(root.glob("step-*")) if root.is_dir() else []:
        if path.name.endswith(".tmp") or not (path / STATE_FILE).is_file():
            continue
        try:
            metrics = json.loads((path / METRICS_FILE).read_text())
        except (OSError, ValueError):
            metrics = {}
        found.append((int(path.name.split("-")[1]), path, metrics))
    return found


def checkpoint_score(metrics: dict) -> tuple[int, float]:
    """Higher is better, like compared with like: any checkpoint with a validation reward ranks
    above every checkpoint with only a training reward (a paused checkpoint may not have been
    validated, and training rewards of sampled answers are not comparable with greedy
    validation rewards); within each kind, the reward decides. (0, -inf) when neither exists."""
    for kind, key in ((2, "valid/reward_mean"), (1, "train/reward_mean")):
        value = metrics.get(key)
        if isinstance(value, int | float) and math.isfinite(value):
            return kind, float(value)
    return 0, -math.inf


def best_checkpoint(output_dir: str | Path) -> Path | None:
    found = list_checkpoints(output_dir)
    if not found:
        return None
    # ties go to the later step: same reward, more training
    return max(found, key=lambda c: (checkpoint_score(c[2]), c[0]))[1]


def prune_checkpoints(output_dir: str | Path, keep_best: int) -> list[Path]:
    """Delete all but the `keep_best` best checkpoints and the latest; return what was deleted."""
    found = list_checkpoints(output_dir)
    if not found:
        return []
    latest = found[-1][0]
    ranked = sorted(found, key=lambda c: (checkpoint_score(c[2]), c[0]), reverse=True)
    keep = {c[0] for c in ranked[:keep_best]} | {latest}
    removed = []
    for step, path, _ in found:
        if step not in keep:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def checkpoint_export_zip(checkpoint: str | Path, destination: str | Path | None = None,
                          *, include_trainer_state: bool = False) -> Path:
    """Zip a checkpoint's model files (adapter or full weights + tokenizer + metrics).

    The optimizer state is left out unless asked for: it is only needed to resume training
    and can be twice the size of the weights.
    """
    checkpoint = Path(checkpoint)
    destination = Path(destination) if destination else checkpoint.with_suffix(".zip")
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(checkpoint.rglob("*")):
            if file.is_file() and (include_trainer_state or file.name != STATE_FILE):
                zf.write(file, arcname=f"{checkpoint.name}/{file.relative_to(checkpoint)}")
    return destination

