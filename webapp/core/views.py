from django.contrib.admin.views.decorators import staff_member_required
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.views.decorators.http import require_GET, require_POST

from trainer.grading.isolation import sandbox_status

from .models import WorkerPing
from .services import worker_pings_send


@require_GET
def favicon(request):
    """Browsers ask for /favicon.ico on pages without a <link rel=icon> (JSON, downloads)."""
    return redirect(static("favicon.svg"), permanent=True)


@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


def not_found(request, exception=None):
    if request.path.startswith("/v1/"):
        return JsonResponse({"error": {"message": f"Unknown URL {request.path}", "type": "invalid_request_error",
                                       "param": None, "code": "unknown_url"}}, status=404)
    return render(request, "404.html", status=404)


@require_GET
@staff_member_required
def system_status(request):
    return render(request, "core/system.html", {"pings": WorkerPing.objects.all()[:10],
                                                "sandbox": sandbox_status()})


@require_POST
@staff_member_required
def system_ping(request):
    pings = worker_pings_send()
    if request.htmx:
        response = render(request, "core/_pings.html", {"pings": pings})
        response["HX-Trigger"] = "ping-sent"
        return response
    return redirect("system_status")


def _running_run(ping: WorkerPing):
    """A training worker runs one run at a time: say which run it is busy with."""
    if ping.answered_at or ping.queue != "training":
        return None
    from webapp.runs.models import Run, RunStatus

    return Run.objects.filter(status=RunStatus.RUNNING).select_related("project").first()


@require_GET
@staff_member_required
def system_recent_pings(request):
    return render(request, "core/_recent_pings.html", {"pings": WorkerPing.objects.all()[:10]})


@require_GET
@staff_member_required
def system_ping_status(request, pk: int):
    ping = get_object_or_404(WorkerPing, pk=pk)
    response = render(request, "core/_ping.html", {"ping": ping, "busy_run": _running_run(ping)})
    if ping.answered_at:
        response["HX-Trigger"] = "ping-answered"
    return response
