"""/v1/chat/completions and /v1/models for the project's models, in OpenAI's shapes.

Models: the built-in and registered base models, every succeeded job's `fine_tuned_model`
(its best checkpoint) and every kept checkpoint (`…:ckpt-step-<n>`). The answer comes from
the inference engine (`engine.py`), never from this process. `n` answers are n engine
requests (seeds `seed`, `seed+1`, … when a seed is given); usage counts the prompt once.
"""

from __future__ import annotations

import json
import secrets
import time

from django.conf import settings
from django.http import StreamingHttpResponse
from rest_framework.decorators import api_view
from rest_framework.response import Response

from webapp.core.api import ApiError, api_projects

from . import engine
from .selectors import ModelRef, model_resolve, project_models

MAX_N = 8
MAX_MESSAGES = 256
MAX_MESSAGE_CHARS = 200_000
MAX_CONVERSATION_CHARS = 1_000_000  # all messages together (no model here reads more)
ROLES = ("system", "developer", "user", "assistant")


def model_object(ref: ModelRef) -> dict:
    obj = {"id": ref.name, "object": "model", "created": ref.created,
           "owned_by": "system" if ref.run is None else f"project-{ref.run.project.slug}"}
    if ref.run is not None:  # ours: where it comes from
        obj.update({"root": ref.base_name, "fine_tuning_job": ref.run.pk, "step": ref.checkpoint.step})
    return obj


def models_for_request(request) -> list[ModelRef]:
    seen, refs = set(), []
    for project in api_projects(request):
        for ref in project_models(project=project):
            if ref.name not in seen:
                seen.add(ref.name)
                refs.append(ref)
    return refs


def resolve_for_request(request, name) -> ModelRef:
    if not isinstance(name, str) or not name or len(name) > 300:
        raise ApiError("model is required: a model id from GET /v1/models.", param="model")
    for project in api_projects(request):
        ref = model_resolve(project=project, name=name)
        if ref is not None:
            return ref
    raise ApiError(f"The model {name!r} does not exist or you do not have access to it.", status_code=404,
                   param="model", code="model_not_found")


@api_view(["GET"])
def models(request):
    return Response({"object": "list", "data": [model_object(r) for r in models_for_request(request)]})


@api_view(["GET"])
def model_detail(request, model_id: str):
    return Response(model_object(resolve_for_request(request, model_id)))


# --- chat ------------------------------------------------------------------------------------


def _number(body: dict, name: str, default, low: float, high: float, *, integer: bool = False, low_open: bool = False):
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
        raise ApiError(f"{name} must be {'a whole number' if integer else 'a number'}.", param=name)
    if value != value or not (low < value if low_open else low <= value) or value > high:
        raise ApiError(f"{name} must be {'above' if low_open else 'from'} {low:g} {'and at most' if low_open else 'to'} "
                       f"{high:g} (got {value!r}).", param=name)
    return value


def _messages(value) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise ApiError("messages must be a non-empty list of {role, content} objects.", param="messages")
    if len(value) > MAX_MESSAGES:
        raise ApiError(f"messages holds at most {MAX_MESSAGES} messages.", param="messages")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict):
            raise ApiError("each message must be an object with role and content.", param=f"messages[{i}]")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise ApiError(f"role must be one of {', '.join(ROLES)}.", param=f"messages[{i}].role")
        if isinstance(content, list):  # content parts: text only
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                       for p in content):
                raise ApiError("only text content parts are supported.", param=f"messages[{i}].content")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise ApiError("content must be a text.", param=f"messages[{i}].content")
        if len(content) > MAX_MESSAGE_CHARS:
            raise ApiError(f"content is longer than {MAX_MESSAGE_CHARS} characters.", param=f"messages[{i}].content")
        out.append({"role": "system" if role == "developer" else role, "content": content})
    if sum(len(m["content"]) for m in out) > MAX_CONVERSATION_CHARS:
        raise ApiError(f"messages hold more than {MAX_CONVERSATION_CHARS} characters in all.", param="messages")
    return out


def chat_params(body) -> dict:
    """Checked request fields; every problem is a 400 naming its field."""
    if not isinstance(body, dict):
        raise ApiError("Send a JSON object.", code="invalid_value")
    params = {"messages": _messages(body.get("messages"))}
    limit = settings.STUDIO_CHAT_MAX_TOKENS
    max_tokens = _number(body, "max_completion_tokens", None, 1, limit, integer=True)
    if max_tokens is None:
        max_tokens = _number(body, "max_tokens", None, 1, limit, integer=True)
    params["max_tokens"] = max_tokens or min(512, limit)
    params["temperature"] = float(_number(body, "temperature", 1.0, 0, 2))
    params["top_p"] = float(_number(body, "top_p", 1.0, 0, 1, low_open=True))
    params["n"] = _number(body, "n", 1, 1, MAX_N, integer=True)
    params["seed"] = _number(body, "seed", None, 0, 2**63 - 1, integer=True)
    stop = body.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) and 0 < len(s) <= 200 for s in stop):
            raise ApiError("stop must be a text or a list of up to 4 texts.", param="stop")
    params["stop"] = stop or None
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError("stream must be true or false.", param="stream")
    params["stream"] = stream
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise ApiError("stream_options must be an object.", param="stream_options")
    params["include_usage"] = bool((options or {}).get("include_usage"))
    return params


class StopFilter:
    """OpenAI's `stop`: the text ends before the first stop sequence, which is not returned.
    Streaming holds back only what could still become a stop sequence."""

    def __init__(self, stops: list[str] | None):
        self.stops = stops or []
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.buffer, self.stopped = "", False

    def feed(self, text: str) -> str:
        if self.stopped:
            return ""
        self.buffer += text
        cut = min((i for i in (self.buffer.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            out, self.buffer, self.stopped = self.buffer[:cut], "", True
            return out
        keep = len(self.buffer) - self.hold if self.hold else len(self.buffer)
        out, self.buffer = self.buffer[:max(keep, 0)], self.buffer[max(keep, 0):]
        return out

    def flush(self) -> str:
        out, self.buffer = ("" if self.stopped else self.buffer), ""
        return out


def _engine_error(exc: engine.EngineError) -> Response:
    response = Response({"error": {"message": exc.message, "type": "server_error" if exc.status >= 500 else
                                   "invalid_request_error", "param": "model", "code": exc.code}}, status=exc.status)
    if exc.retry_after:
        response["Retry-After"] = str(exc.retry_after)
    return response


@api_view(["POST"])
def chat_completions(request):
    params = chat_params(request.data)
    ref = resolve_for_request(request, request.data.get("model"))
    try:
        model = engine.engine_model(ref)
        if params["stream"]:
            first = engine.stream(model, params, seed=params["seed"])  # fail before the 200 starts
            return _streaming(ref, model, params, first)
        answers = [engine.complete(model, params, seed=_seed(params, i)) for i in range(params["n"])]
    except engine.EngineError as exc:
        return _engine_error(exc)
    choices, prompt, completion = [], 0, 0
    for i, answer in enumerate(answers):
        choice = (answer.get("choices") or [{}])[0]
        stop = StopFilter(params["stop"])
        content = stop.feed((choice.get("message") or {}).get("content") or "") + stop.flush()
        choices.append({"index": i, "message": {"role": "assistant", "content": content, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop" if stop.stopped else choice.get("finish_reason") or "stop"})
        usage = answer.get("usage") or {}
        prompt = usage.get("prompt_tokens", prompt)
        completion += usage.get("completion_tokens", 0)
    return Response({"id": "chatcmpl-" + secrets.token_hex(12), "object": "chat.completion", "created": int(time.time()),
                     "model": ref.name, "choices": choices, "system_fingerprint": None, "service_tier": None,
                     "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                               "total_tokens": prompt + completion}})


def _seed(params: dict, i: int) -> int | None:
    return None if params["seed"] is None else (params["seed"] + i) % (2**63 - 1)


def _streaming(ref: ModelRef, model, params: dict, first) -> StreamingHttpResponse:
    chat_id, created = "chatcmpl-" + secrets.token_hex(12), int(time.time())

    def chunk(index: int, delta: dict, finish=None, usage=None) -> bytes:
        data = {"id": chat_id, "object": "chat.completion.chunk", "created": created, "model": ref.name,
                "system_fingerprint": None,
                "choices": [] if index < 0 else [{"index": index, "delta": delta, "logprobs": None,
                                                  "finish_reason": finish}]}
        if usage is not None:
            data["usage"] = usage
        return f"data: {json.dumps(data)}\n\n".encode()

    def events():
        prompt = completion = 0
        for i in range(params["n"]):
            try:
                source = first if i == 0 else engine.stream(model, params, seed=_seed(params, i))
                yield chunk(i, {"role": "assistant", "content": ""})
                finish, stop = "stop", StopFilter(params["stop"])
                for part in source:
                    if part.get("usage"):
                        prompt = part["usage"].get("prompt_tokens", prompt)
                        completion += part["usage"].get("completion_tokens", 0)
                    for c in part.get("choices") or []:
                        text = stop.feed((c.get("delta") or {}).get("content") or "")
                        if text:
                            yield chunk(i, {"content": text})
                        finish = c.get("finish_reason") or finish
                rest = stop.flush()
                if rest:
                    yield chunk(i, {"content": rest})
                yield chunk(i, {}, "stop" if stop.stopped else finish)
            except engine.EngineError as exc:  # the stream has started: report it in the stream
                yield f"data: {json.dumps({'error': {'message': exc.message, 'code': exc.code}})}\n\n".encode()
                return
        if params["include_usage"]:
            yield chunk(-1, {}, usage={"prompt_tokens": prompt, "completion_tokens": completion,
                                       "total_tokens": prompt + completion})
        yield b"data: [DONE]\n\n"

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
