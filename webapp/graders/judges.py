"""Keep the grading engine's judge registry in step with what admins configured.

Judges a grader may name: the built-in models, the judge endpoints (Admin → Judge
endpoints) and the registered local model folders (Admin → Local base models). Every
process that validates or grades (web, workers) calls `sync_judges()` first; it costs two
small queries and re-registers only when something changed.
"""

from __future__ import annotations

import logging
import threading

from django.db.models import Count, Max

from trainer.grading import JudgeConfig, default_judges
from webapp.core.crypto import DecryptionError

from .models import JudgeEndpoint

log = logging.getLogger(__name__)
_lock = threading.Lock()
_state: dict = {"stamp": None, "names": set()}


def _api_key(endpoint: JudgeEndpoint) -> str | None:
    try:
        return endpoint.api_key or None
    except DecryptionError as exc:
        log.error("judge endpoint %r: the API key cannot be used: %s", endpoint.name, exc)
        return None


def sync_judges() -> None:
    from webapp.runs.models import LocalBaseModel  # runs depends on graders, not the reverse

    stamp = JudgeEndpoint.objects.aggregate(n=Count("id"), t=Max("updated_at"))
    local = tuple(LocalBaseModel.objects.order_by("name").values_list("name", "path"))
    stamp = (stamp["n"], stamp["t"], local)
    with _lock:
        if stamp == _state["stamp"]:
            return
        endpoints = list(JudgeEndpoint.objects.all())
        configs = [JudgeConfig(name=name, path=path) for name, path in local]
        # An endpoint and a local model of the same name: the endpoint wins (registered last).
        configs += [JudgeConfig(name=e.name, base_url=e.base_url, api_key=_api_key(e),
                                model=e.model or None, timeout_s=e.timeout_s) for e in endpoints]
        names = {c.name for c in configs}
        for name in _state["names"] - names:
            default_judges.unregister(name)
        for config in configs:
            default_judges.register(config)
        _state.update(stamp=stamp, names=names)
