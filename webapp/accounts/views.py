from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from webapp.projects.selectors import project_list_for_user

from . import selectors, services
from .forms import ApiKeyForm
from .models import ApiKey


def lockout_minutes() -> int:
    return max(1, round(settings.AXES_COOLOFF_TIME.total_seconds() / 60))


def locked_out(request, response, credentials):
    """What django-axes answers once a user name has failed too often from one address."""
    return render(request, "registration/locked_out.html", {"minutes": lockout_minutes()}, status=429)


@require_http_methods(["GET", "POST"])
@login_required
def api_keys(request):
    form = ApiKeyForm(request.POST or None)
    new_key = None
    if request.method == "POST" and form.is_valid():
        try:
            _, new_key = services.api_key_create(user=request.user, name=form.cleaned_data["name"])
        except ValidationError as exc:
            form.add_error("name", exc.messages)
        else:
            form = ApiKeyForm()
    return render(request, "accounts/api_keys.html", {
        "form": form, "keys": selectors.api_key_list(user=request.user), "new_key": new_key,
        "projects": project_list_for_user(user=request.user),
        "base_url": f"{request.scheme}://{request.get_host()}/v1",
    })


@require_POST
@login_required
def api_key_revoke(request, pk: int):
    key = get_object_or_404(ApiKey, pk=pk, user=request.user)  # only one's own keys
    services.api_key_revoke(key=key)
    messages.success(request, f"Key “{key.name}” revoked; requests using it now fail.")
    return redirect("accounts:api_keys")
