"""Keep the grading engine's judge registry in step with the admin's judge endpoints.

Every process that grades (web, workers) calls `sync_judges()` before grading; it costs one
small query and re-registers only when the table changed.
"""

from __future__ import annotations

import threading

from django.db.models import Count, Max

from trainer.grading import JudgeConfig, default_judges

from .models import JudgeEndpoint

_lock = threading.Lock()
_state: dict = {"stamp": None, "names": set()}


def sync_judges() -> None:
    stamp = JudgeEndpoint.objects.aggregate(n=Count("id"), t=Max("updated_at"))
    stamp = (stamp["n"], stamp["t"])
    with _lock:
        if stamp == _state["stamp"]:
            return
        endpoints = list(JudgeEndpoint.objects.all())
        for name in _state["names"] - {e.name for e in endpoints}:
            default_judges.unregister(name)
        for e in endpoints:
            default_judges.register(JudgeConfig(name=e.name, base_url=e.base_url, api_key=e.api_key or None,
                                                model=e.model or None, timeout_s=e.timeout_s))
        _state.update(stamp=stamp, names={e.name for e in endpoints})
