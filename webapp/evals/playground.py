"""The playground: chat with a project model, or two side by side, on a typed message or a
dataset's task; answers stream from the inference engine; with a task and a grader, each
answer is graded as soon as it is complete (every criterion's score).

The page's script posts to `playground_stream` (session auth, CSRF) and reads the stream
with fetch(); it writes text with `textContent`, never as HTML.
"""

from __future__ import annotations

import json
import math

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST

from trainer.grading import run_grader
from webapp.datasets.models import Task
from webapp.datasets.selectors import dataset_list
from webapp.graders.judges import sync_judges
from webapp.graders.selectors import grader_get, grader_list_latest, try_tasks
from webapp.graders.services import grading_scope
from webapp.projects.access import ProjectAccess, project_view
from webapp.projects.models import Role

from . import engine
from .selectors import model_resolve, project_models

MAX_MESSAGE_CHARS = 50_000


def _task(access: ProjectAccess, pk) -> Task | None:
    """The task of this `?task=`/POST value, None when none is given or it is no row id."""
    if not isinstance(pk, str) or not pk.isascii() or not pk.isdigit() or len(pk) > 18:  # "²".isdigit() too
        return None
    return get_object_or_404(Task, pk=int(pk), dataset__project=access.project)


@require_GET
@project_view(Role.VIEWER)
def playground(request, access: ProjectAccess):
    datasets = list(dataset_list(project=access.project))
    dataset = next((d for d in datasets if str(d.pk) == request.GET.get("dataset")), None)
    task = _task(access, request.GET.get("task"))
    if task is not None:
        dataset = task.dataset
    models = project_models(project=access.project)
    trained = [m for m in models if m.kind == "fine_tuned"]
    return render(request, "evals/playground.html", {
        "access": access, "project": access.project, "tab": "playground", "models": models,
        "model": request.GET.get("model") or (models[0].name if models else ""),
        "compare": request.GET.get("compare") or (trained[0].name if trained else ""),
        "datasets": datasets, "dataset": dataset, "tasks": try_tasks(dataset=dataset) if dataset else [],
        "task": task, "graders": grader_list_latest(project=access.project),
        "grader": request.GET.get("grader", ""),
    })


@require_GET
@project_view(Role.VIEWER)
def playground_tasks(request, access: ProjectAccess):
    """The task picker's options for one dataset (htmx)."""
    dataset = next((d for d in dataset_list(project=access.project) if str(d.pk) == request.GET.get("dataset")), None)
    return render(request, "evals/_playground_tasks.html", {"tasks": try_tasks(dataset=dataset) if dataset else []})


def _sse(data: dict) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


def _error_stream(message: str, status: int = 200) -> StreamingHttpResponse:
    return StreamingHttpResponse(iter([_sse({"error": message})]), content_type="text/event-stream", status=status)


@require_POST
@project_view(Role.VIEWER)
def playground_stream(request, access: ProjectAccess):
    """One model's answer as server-sent events: {"text"} pieces, then {"done", "usage"} or {"error"}."""
    ref = model_resolve(project=access.project, name=request.POST.get("model", ""))
    if ref is None:
        return _error_stream("Pick a model of this project.", 400)
    task = _task(access, request.POST.get("task"))
    if task is not None:
        messages = task.data["messages"]
    else:
        text = request.POST.get("message", "").strip()
        if not text:
            return _error_stream("Type a message or pick a task.", 400)
        messages = [{"role": "user", "content": text[:MAX_MESSAGE_CHARS]}]
        system = request.POST.get("system", "").strip()
        if system:
            messages.insert(0, {"role": "system", "content": system[:MAX_MESSAGE_CHARS]})
    try:
        max_tokens = max(1, min(int(request.POST.get("max_tokens") or 128), settings.STUDIO_CHAT_MAX_TOKENS))
        temperature = float(request.POST.get("temperature") or 0)
        if not math.isfinite(temperature):  # "nan", "inf": min/max would let NaN through
            raise ValueError(temperature)
        temperature = max(0.0, min(temperature, 2.0))
    except ValueError:
        return _error_stream("Longest answer and variety must be numbers.", 400)
    params = {"messages": messages, "max_tokens": max_tokens, "temperature": temperature, "top_p": 1.0}
    try:
        source = engine.stream(engine.engine_model(ref), params, seed=None)  # "Send" again: a new draw
    except engine.EngineError as exc:
        return _error_stream(exc.message)

    def events():
        finish, usage = "stop", {}
        try:
            for part in source:
                usage = part.get("usage") or usage
                for c in part.get("choices") or []:
                    text = (c.get("delta") or {}).get("content")
                    if text:
                        yield _sse({"text": text})
                    finish = c.get("finish_reason") or finish
        except Exception as exc:  # noqa: BLE001 - the stream has started: say it in the stream
            yield _sse({"error": f"The engine stopped: {type(exc).__name__}"})
            return
        yield _sse({"done": True, "finish_reason": finish, "usage": usage})

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


@require_POST
@project_view(Role.VIEWER)
def playground_grade(request, access: ProjectAccess):
    """Grade one answer to a task with a grader: the total and every criterion (an HTML partial)."""
    task = _task(access, request.POST.get("task"))
    if task is None or not request.POST.get("grader"):
        return HttpResponse('<p class="muted small">Pick a task and a grader to score the answers.</p>')
    grader = grader_get(project=access.project, pk=request.POST["grader"])
    sync_judges()
    item = {k: v for k, v in task.data.items() if k != "messages"}
    result = run_grader(grader.spec, request.POST.get("answer", "")[:100_000], item,
                        time_budget=settings.STUDIO_GRADE_REQUEST_SECONDS,
                        scope=grading_scope(project_id=access.project.pk))
    subs = result.sub_results or {result.name: result}
    rows = [{"name": key, "reward": sub.reward, "error": sub.error_message or ""} for key, sub in subs.items()]
    return render(request, "evals/_playground_grade.html", {"result": result, "rows": rows, "grader": grader})
