"""The studio's client of the inference engine, an OpenAI-compatible server in its own process.

The web process never loads a model: it maps a project model's name to what the engine
serves and forwards the request.

- `transformers` (default, `transformers serve`, started by `make run`): the engine loads a
  local model folder on demand, named by its path. Base models are their folders; trained
  models are their merged export (`$STUDIO_DATA_DIR/exports/<checkpoint>/merged`, prepared
  by a worker when the run finishes). Sampling settings are sent as a `generation_config`
  (transformers' extension) on top of the model's own, so `temperature` really samples.
- `vllm` (GPU hosts): a vLLM server started with `--enable-lora` serving the base model under
  its studio name (`--served-model-name`); a checkpoint's LoRA adapter is loaded into it at
  first use (`POST /v1/load_lora_adapter`, needs `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from .selectors import ModelRef

_loaded_adapters: set[str] = set()
_lock = threading.Lock()


class EngineError(Exception):
    def __init__(self, message: str, *, status: int = 503, code: str = "engine_unavailable",
                 retry_after: int | None = None):
        super().__init__(message)
        self.message, self.status, self.code, self.retry_after = message, status, code, retry_after


@dataclass
class EngineModel:
    name: str  # what the engine is asked for
    generation_config: dict | None = None  # transformers: the model's own defaults


def _builtin_folder(name: str) -> Path | None:
    from trainer.model_registry import BUILTIN_MODELS, model_cache_dir

    if name not in BUILTIN_MODELS:
        return None
    folder = model_cache_dir() / name
    return folder if (folder / ".converted-ok").exists() else None


def model_folder(ref: ModelRef) -> Path:
    """The local Hugging Face folder the engine loads for a project model; raises EngineError
    (503, retry later) while a worker still prepares it."""
    from trainer.export import is_adapter_checkpoint

    from .exports import export_dir, export_merged_request, merged_failed

    if ref.checkpoint is None:
        folder = _builtin_folder(ref.base_model)
        if folder is not None:
            return folder
        if Path(ref.base_model).is_dir():
            return Path(ref.base_model)
        from .tasks import model_prepare_task

        model_prepare_task.apply_async(args=[ref.base_model], queue=settings.STUDIO_EVAL_QUEUE)
        raise EngineError(f"The base model {ref.name} is being prepared by a worker (converted once); "
                          "try again in a minute.", code="model_not_ready", retry_after=30)
    ckpt = ref.checkpoint
    if not Path(ckpt.path).is_dir():
        raise EngineError(f"The files of {ref.name} are gone (pruned or deleted).", status=404,
                          code="model_not_found")
    if not is_adapter_checkpoint(ckpt.path):
        return Path(ckpt.path)
    if export_merged_request(checkpoint=ckpt):
        return export_dir(ckpt, "merged")
    failed = merged_failed(ckpt)
    if failed:
        raise EngineError(f"Preparing {ref.name} for inference failed: {failed}", status=500, code="export_failed")
    raise EngineError(f"{ref.name} is being prepared by a worker (the adapter is merged into the base model "
                      "once); try again in a few seconds.", code="model_not_ready", retry_after=10)


def _own_generation_config(folder: Path) -> dict:
    for name in ("generation_config.json", "config.json"):
        try:
            data = json.loads((folder / name).read_text())
        except (OSError, ValueError):
            continue
        keep = {k: data[k] for k in ("eos_token_id", "pad_token_id", "bos_token_id") if data.get(k) is not None}
        if keep:
            return keep
    return {}


def engine_model(ref: ModelRef) -> EngineModel:
    if settings.STUDIO_INFERENCE_ENGINE == "vllm":
        if ref.checkpoint is None:
            return EngineModel(name=ref.name)
        _ensure_adapter(ref)
        return EngineModel(name=ref.checkpoint.pk)
    folder = model_folder(ref)
    return EngineModel(name=str(folder), generation_config=_own_generation_config(folder))


def _client():
    import httpx

    headers = {"Authorization": f"Bearer {settings.STUDIO_INFERENCE_API_KEY}"} if settings.STUDIO_INFERENCE_API_KEY else {}
    return httpx.Client(base_url=settings.STUDIO_INFERENCE_URL, headers=headers,
                        timeout=httpx.Timeout(settings.STUDIO_INFERENCE_TIMEOUT, connect=5))


def _unreachable(exc) -> EngineError:
    return EngineError(f"The inference engine at {settings.STUDIO_INFERENCE_URL} does not answer ({type(exc).__name__}). "
                       "`make run` starts it (Procfile: inference); on GPU hosts set STUDIO_INFERENCE_URL.")


def _ensure_adapter(ref: ModelRef) -> None:
    import httpx

    name = ref.checkpoint.pk
    with _lock:
        if name in _loaded_adapters:
            return
    try:
        with _client() as client:
            r = client.post("/v1/load_lora_adapter", json={"lora_name": name, "lora_path": ref.checkpoint.path})
    except httpx.HTTPError as exc:
        raise _unreachable(exc) from None
    if r.status_code >= 400 and "already" not in r.text:
        raise EngineError(f"The engine refused the adapter of {ref.name}: {r.text[:300]}", status=502,
                          code="engine_error")
    with _lock:
        _loaded_adapters.add(name)


def engine_body(model: EngineModel, params: dict, *, seed: int | None, stream: bool) -> dict:
    """The request the engine gets for one answer."""
    body = {"model": model.name, "messages": params["messages"], "max_tokens": params["max_tokens"],
            "temperature": params["temperature"], "top_p": params["top_p"], "stream": stream}
    if seed is not None:
        body["seed"] = seed
    if params.get("stop"):
        body["stop"] = params["stop"]
    if model.generation_config is not None:  # transformers serve: sample for real, stop at EOS
        gen = {**model.generation_config, "max_new_tokens": params["max_tokens"],
               "do_sample": params["temperature"] > 0}
        if params["temperature"] > 0:
            gen.update(temperature=params["temperature"], top_p=params["top_p"])
        if params.get("stop"):
            gen["stop_strings"] = params["stop"]
        body["generation_config"] = json.dumps(gen)
    return body


def _error_of(response) -> EngineError:
    try:
        detail = response.json().get("error") or response.json()
    except ValueError:
        detail = response.text[:300]
    return EngineError(f"The inference engine answered HTTP {response.status_code}: {str(detail)[:500]}",
                       status=502, code="engine_error")


def complete(model: EngineModel, params: dict, *, seed: int | None) -> dict:
    import httpx

    try:
        with _client() as client:
            r = client.post("/v1/chat/completions", json=engine_body(model, params, seed=seed, stream=False))
    except httpx.HTTPError as exc:
        raise _unreachable(exc) from None
    if r.status_code >= 400:
        raise _error_of(r)
    return r.json()


def stream(model: EngineModel, params: dict, *, seed: int | None) -> Iterator[dict]:
    """The engine's chunks, parsed. The first request error raises before anything is yielded."""
    import httpx

    client = _client()
    try:
        ctx = client.stream("POST", "/v1/chat/completions", json=engine_body(model, params, seed=seed, stream=True))
        response = ctx.__enter__()
    except httpx.HTTPError as exc:
        client.close()
        raise _unreachable(exc) from None
    if response.status_code >= 400:
        response.read()
        error = _error_of(response)
        ctx.__exit__(None, None, None)
        client.close()
        raise error

    def chunks() -> Iterator[dict]:
        try:
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    yield json.loads(data)
                except ValueError:
                    continue
        finally:
            ctx.__exit__(None, None, None)
            client.close()

    return chunks()
