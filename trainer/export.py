"""Exports of a checkpoint that work away from this server.

- `adapter`: the LoRA adapter in PEFT's format (`adapter_config.json` +
  `adapter_model.safetensors`) with the tokenizer; `base_model_name_or_path` names the public
  base model (a hub id where we know one), never a folder that only exists on the server.
- `merged`: the adapter folded into the base model's weights, saved as a complete Hugging
  Face folder (safetensors + config + generation config + tokenizer with its chat template)
  that `AutoModelForCausalLM.from_pretrained` and vLLM load directly.

A full fine-tuning checkpoint already is a complete model: both formats give its weights.
The optimizer state (`trainer_state.pt`) and the run's `train_config.json` (server paths) are
never exported. The model card (README.md) is written by the caller, who knows the run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from trainer.checkpoints import CONFIG_FILE, METRICS_FILE, STATE_FILE

# Where the built-in models come from, for people who load an export elsewhere.
PUBLIC_BASE_MODELS = {"smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct"}
FORMATS = ("adapter", "merged")
# PEFT's own README.md is a blank card naming the server's base-model folder: ours replaces it.
_NEVER_EXPORTED = {STATE_FILE, CONFIG_FILE, "README.md"}


def is_adapter_checkpoint(checkpoint: str | Path) -> bool:
    return (Path(checkpoint) / "adapter_model.safetensors").is_file()


def public_base_name(base_model: str) -> str:
    """The base model's public name: its hub id for a built-in model, else its name (never a path)."""
    if base_model in PUBLIC_BASE_MODELS:
        return PUBLIC_BASE_MODELS[base_model]
    return Path(base_model).name if "/" in base_model and Path(base_model).is_absolute() else base_model


def export_files(checkpoint: str | Path) -> list[Path]:
    """The checkpoint's files an `adapter` export contains (weights, tokenizer, metrics)."""
    checkpoint = Path(checkpoint)
    return [f for f in sorted(checkpoint.rglob("*")) if f.is_file() and f.name not in _NEVER_EXPORTED]


def export_size(checkpoint: str | Path, *, base_model: str | None = None) -> int:
    """Bytes of the model files an `adapter` download holds (the card aside): the optimizer
    state stays on the server, and `adapter_config.json` names the public base model."""
    checkpoint = Path(checkpoint)
    total = 0
    for f in export_files(checkpoint):
        if f.name == "adapter_config.json" and f.parent == checkpoint and base_model is not None:
            total += len(_public_adapter_config(f, base_model))
        else:
            total += f.stat().st_size
    return total


def _public_adapter_config(path: Path, base_model: str) -> bytes:
    config = json.loads(path.read_text())
    config["base_model_name_or_path"] = public_base_name(base_model)
    return json.dumps(config, indent=2).encode()


def export_adapter(checkpoint: str | Path, destination: str | Path, *, base_model: str) -> Path:
    """Write the PEFT adapter export of a checkpoint into `destination` (created)."""
    checkpoint, destination = Path(checkpoint), Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    for file in export_files(checkpoint):
        target = destination / file.relative_to(checkpoint)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, target)
    config_path = destination / "adapter_config.json"
    if config_path.is_file():
        config_path.write_bytes(_public_adapter_config(config_path, base_model))
    return destination


def export_merged(checkpoint: str | Path, destination: str | Path, *, base_model: str,
                  dtype: str = "auto") -> Path:
    """Fold the checkpoint's adapter into its base model and save a complete model folder.

    Written to a temporary sibling and renamed into place, so a half-written folder is never
    served. Runs on CPU (merging is a few matrix products per layer).
    """
    from trainer.evaluation import load_for_inference

    checkpoint, destination = Path(checkpoint), Path(destination)
    tmp = destination.with_name(destination.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model, tokenizer = load_for_inference(base_model, checkpoint, device="cpu",
                                          dtype="float32" if dtype == "auto" else dtype, merge=True)
    model.config.name_or_path = public_base_name(base_model)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.padding_side = "left"
    tokenizer.save_pretrained(tmp)
    if getattr(model, "generation_config", None) is not None and not (tmp / "generation_config.json").exists():
        model.generation_config.save_pretrained(tmp)
    if (checkpoint / METRICS_FILE).is_file():
        shutil.copyfile(checkpoint / METRICS_FILE, tmp / METRICS_FILE)
    shutil.rmtree(destination, ignore_errors=True)
    tmp.rename(destination)
    return destination
