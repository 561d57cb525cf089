"""Judges for model graders: a local Hugging Face model, or an OpenAI-compatible endpoint.

A `score_model`/`label_model` grader names a `model`. If the registry has a `JudgeConfig`
under that name (the web app registers the endpoints and local model folders an admin
configured; keys stay server-side), that judge answers: an endpoint gets
`{base_url}/chat/completions`, a folder is loaded once per process and shared. A built-in
model name (`smollm2-135m-instruct`) is always known. Nothing else is: a grader cannot make
the server look at a path or a hub id it typed (that told anyone which files exist and
loaded arbitrary models into the web process). Only the command line, run by the owner of
the machine, sets `allow_local_paths` so a grader file may name a model folder.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

Message = dict[str, Any]


@dataclass(frozen=True)
class JudgeConfig:
    """An OpenAI-compatible chat endpoint, or (with `path`) a local model folder."""

    name: str
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)  # never printed, never sent back
    model: str | None = None  # the endpoint's model id; defaults to `name`
    path: str | None = None
    timeout_s: float = 60.0
    max_concurrency: int = 8
    retries: int = 1


@dataclass
class SamplingParams:
    """OpenAI's `sampling_params`; None means the judge's default."""

    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    max_completions_tokens: int | None = None

    @classmethod
    def of(cls, raw: dict[str, Any] | None) -> SamplingParams:
        raw = raw or {}
        return cls(
            raw.get("temperature"),
            raw.get("top_p"),
            raw.get("seed"),
            raw.get("max_completions_tokens"),
        )


@dataclass
class JudgeReply:
    """One judge answer. `error` set means the judge could not be asked (server error)."""

    text: str | None = None
    refusal: str | None = None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""


class Judge(Protocol):
    name: str
    max_batch: int

    def complete(
        self, conversations: Sequence[list[Message]], params: SamplingParams
    ) -> list[JudgeReply]: ...


class EndpointJudge:
    """POSTs `/chat/completions`, concurrently for a batch, with one retry on flaky errors."""

    def __init__(self, config: JudgeConfig):
        if not config.base_url:
            raise ValueError("an endpoint judge needs base_url")
        self.config = config
        self.name = config.model or config.name
        self.max_batch = max(1, config.max_concurrency) * 4
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self.client = httpx.Client(
            base_url=config.base_url.rstrip("/"), headers=headers, timeout=config.timeout_s
        )

    def complete(
        self, conversations: Sequence[list[Message]], params: SamplingParams
    ) -> list[JudgeReply]:
        if len(conversations) == 1:
            return [self._one(conversations[0], params)]
        with ThreadPoolExecutor(
            max_workers=min(self.config.max_concurrency, len(conversations))
        ) as pool:
            return list(pool.map(lambda c: self._one(c, params), conversations))

    def _one(self, messages: list[Message], params: SamplingParams) -> JudgeReply:
        body: dict[str, Any] = {
            "model": self.name,
            "messages": [_endpoint_message(m) for m in messages],
        }
        for key, value in (
            ("temperature", params.temperature),
            ("top_p", params.top_p),
            ("seed", params.seed),
        ):
            if value is not None:
                body[key] = value
        if params.max_completions_tokens is not None:
            body["max_completion_tokens"] = params.max_completions_tokens
        error = "no attempt made"
        for attempt in range(self.config.retries + 1):
            if attempt:
                time.sleep(0.2 * attempt)
            try:
                response = self.client.post("/chat/completions", json=body)
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__} talking to the judge endpoint {self.config.name!r}"
                continue
            if response.status_code >= 400:
                error = f"judge endpoint {self.config.name!r} answered HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code in (429, 500, 502, 503, 504):
                    continue
                return JudgeReply(error=error, model=self.name)
            return _parse_completion(response, self.name)
        return JudgeReply(error=error, model=self.name)


def _endpoint_message(message: Message) -> Message:
    role = "system" if message["role"] == "developer" else message["role"]
    content = message["content"]
    if isinstance(content, list):
        parts = []
        for part in content:
            if part.get("type") == "input_image":
                parts.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
            else:
                parts.append({"type": "text", "text": part.get("text", "")})
        content = parts
    return {"role": role, "content": content}


def _parse_completion(response: httpx.Response, model: str) -> JudgeReply:
    try:
        data = response.json()
        message = data["choices"][0]["message"]
        usage = data.get("usage") or {}
        return JudgeReply(
            text=message.get("content"),
            refusal=message.get("refusal"),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            model=str(data.get("model") or model),
        )
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return JudgeReply(
            error=f"the judge endpoint sent an unexpected body ({exc!r}): {response.text[:200]}",
            model=model,
        )


class LocalJudge:
    """A causal LM loaded with transformers; batches prompts with left padding."""

    max_batch = 8

    def __init__(self, name: str, folder: Path):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = name
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        self.model.eval()
        self.lock = threading.Lock()  # one generate at a time: torch already uses every core

    def _prompt(self, messages: list[Message]) -> str:
        flat = [
            {
                "role": "system" if m["role"] == "developer" else m["role"],
                "content": _text_of(m["content"]),
            }
            for m in messages
        ]
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                flat, tokenize=False, add_generation_prompt=True
            )
        return "".join(f"{m['role']}: {m['content']}\n" for m in flat) + "assistant:"

    def complete(
        self, conversations: Sequence[list[Message]], params: SamplingParams
    ) -> list[JudgeReply]:
        import torch

        prompts = [self._prompt(c) for c in conversations]
        sample = bool(params.temperature and params.temperature > 0)
        options: dict[str, Any] = {
            "max_new_tokens": params.max_completions_tokens or 32,
            "do_sample": sample,
        }
        if sample:
            options["temperature"] = params.temperature
            options["top_p"] = params.top_p if params.top_p is not None else 1.0
        with self.lock, torch.inference_mode():
            if sample and params.seed is not None:
                torch.manual_seed(params.seed)
            batch = self.tokenizer(
                prompts, return_tensors="pt", padding=True, add_special_tokens=False
            )
            output = self.model.generate(
                **batch, pad_token_id=self.tokenizer.pad_token_id, **options
            )  # (B, T + new)
        new_tokens = output[:, batch["input_ids"].shape[1] :]
        replies = []
        for row, mask in zip(new_tokens, batch["attention_mask"], strict=True):
            eos = self.tokenizer.eos_token_id
            produced = int((row != eos).sum()) if eos is not None else len(row)
            text = self.tokenizer.decode(row, skip_special_tokens=True)
            replies.append(
                JudgeReply(
                    text=text,
                    prompt_tokens=int(mask.sum()),
                    completion_tokens=produced,
                    model=self.name,
                )
            )
        return replies


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for part in content:
        if part.get("type") == "input_image":
            raise ValueError("a local judge model cannot look at images; use an endpoint judge")
        texts.append(part.get("text", ""))
    return "\n".join(texts)


_local_judges: dict[str, LocalJudge] = {}
_local_failures: dict[str, tuple[float, str]] = {}
_local_lock = threading.Lock()
FAILURE_MEMORY_S = 60.0  # a model that failed to load is not retried for every sample


def local_judge(name_or_path: str) -> LocalJudge:
    """Load (once per process) the local model `name_or_path` as a judge."""
    with _local_lock:
        judge = _local_judges.get(name_or_path)
        if judge is not None:
            return judge
        failed = _local_failures.get(name_or_path)
        if failed and time.monotonic() - failed[0] < FAILURE_MEMORY_S:
            raise LookupError(failed[1])
        try:
            judge = LocalJudge(name_or_path, _resolve_local(name_or_path))
        except Exception as exc:
            _local_failures[name_or_path] = (time.monotonic(), f"{type(exc).__name__}: {exc}")
            raise
        _local_judges[name_or_path] = judge
        return judge


def _resolve_local(name_or_path: str) -> Path:
    """A folder for a built-in name, a path, or (with a `/`, when online) a hub id.

    A bare name such as `gpt-4o-mini` is what an imported OpenAI grader names: say that an
    admin has to configure it as an endpoint, rather than trying a model hub.
    """
    try:
        from trainer.models import BUILTIN_MODELS, resolve_model
    except ImportError:
        BUILTIN_MODELS, resolve_model = {}, None  # noqa: N806 - mirrors the module's names
    folder = Path(name_or_path).expanduser()
    builtin = name_or_path.lower() in BUILTIN_MODELS
    if not builtin and not folder.exists() and "/" not in name_or_path:
        raise LookupError(
            f"judge model {name_or_path!r} is not configured: an admin can add an OpenAI-compatible "
            f"endpoint named {name_or_path!r}; or use smollm2-135m-instruct or a local model folder"
        )
    if resolve_model is None:
        if folder.is_dir():
            return folder
        raise LookupError(f"judge model {name_or_path!r}: no such folder")
    return Path(resolve_model(name_or_path))


def _builtin_names() -> list[str]:
    try:
        from trainer.models import BUILTIN_MODELS
    except ImportError:  # pragma: no cover - the grading engine used on its own
        return []
    return list(BUILTIN_MODELS)


class JudgeRegistry:
    """Named judges (endpoints, local folders). Thread-safe; judges are built on first use."""

    def __init__(self, configs: Sequence[JudgeConfig] = (), *, allow_local_paths: bool = False):
        self._configs: dict[str, JudgeConfig] = {}
        self._judges: dict[str, Judge] = {}
        self._lock = threading.Lock()
        self.allow_local_paths = allow_local_paths
        for config in configs:
            self.register(config)

    def unknown(self, model: str) -> str | None:
        """None when `model` names a judge here; otherwise what to tell the grader's author.

        The answer depends only on names, never on the file system.
        """
        if model in self._configs or model.lower() in _builtin_names() or self.allow_local_paths:
            return None
        choices = [*_builtin_names(), *self.names()]
        return (
            f"unknown judge model {model[:100]!r}; use one of: {', '.join(choices)}. An admin adds "
            "OpenAI-compatible endpoints under Admin → Judge endpoints and model folders under "
            "Admin → Local base models"
        )

    def register(self, config: JudgeConfig) -> None:
        with self._lock:
            self._configs[config.name] = config
            _close(self._judges.pop(config.name, None))

    def unregister(self, name: str) -> None:
        with self._lock:
            self._configs.pop(name, None)
            _close(self._judges.pop(name, None))

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._configs)

    def get(self, model: str) -> Judge:
        """The judge for a grader's `model`: a registered one, else a built-in local model."""
        with self._lock:
            judge = self._judges.get(model)
            config = self._configs.get(model)
            if judge is None and config is not None:
                judge = (
                    EndpointJudge(config) if config.base_url else local_judge(config.path or model)
                )
                self._judges[model] = judge
        if judge is not None:
            return judge
        problem = self.unknown(model)
        if problem:
            raise LookupError(problem)
        return local_judge(model.lower() if model.lower() in _builtin_names() else model)


def _close(judge: Judge | None) -> None:
    """Close a replaced endpoint judge's connections (local models stay shared)."""
    if isinstance(judge, EndpointJudge):
        judge.client.close()


default_judges = JudgeRegistry()


def register_judge(config: JudgeConfig) -> None:
    """Add or replace an endpoint in the process-wide registry."""
    default_judges.register(config)
