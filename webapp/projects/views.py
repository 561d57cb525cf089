from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from webapp.datasets.selectors import dataset_list

from . import services
from .access import ProjectAccess, project_view
from .forms import MemberAddForm, MemberRoleForm, ProjectForm
from .models import Membership, Role
from .selectors import membership_list, project_list_for_user


def _form_errors(form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


@require_GET
@login_required
def project_list(request):
    return render(request, "projects/list.html", {"projects": project_list_for_user(user=request.user)})


@require_http_methods(["GET", "POST"])
@login_required
def project_create(request):
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            project = services.project_create(owner=request.user, **form.cleaned_data)
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, f"Project “{project.name}” created.")
            return redirect("projects:detail", slug=project.slug)
    return render(request, "projects/create.html", {"form": form})


@require_GET
@project_view(Role.VIEWER)
def project_detail(request, access: ProjectAccess):
    from webapp.graders.selectors import grader_list
    from webapp.runs.selectors import run_list

    datasets = dataset_list(project=access.project)
    return render(request, "projects/detail.html", {
        "access": access, "project": access.project, "datasets": datasets,
        "latest_runs": run_list(project=access.project)[:3],
        "has_datasets": datasets.exists(), "has_graders": grader_list(project=access.project).exists(),
    })


@require_GET
@project_view(Role.VIEWER)
def members(request, access: ProjectAccess):
    return _members_page(request, access, MemberAddForm())


def _members_page(request, access, add_form, status=200):
    return render(request, "projects/members.html", {
        "access": access, "project": access.project, "form": add_form, "roles": Role.choices,
        "memberships": membership_list(project=access.project),
    }, status=status)


@require_POST
@project_view(Role.OWNER)
def member_add(request, access: ProjectAccess):
    form = MemberAddForm(request.POST)
    if form.is_valid():
        try:
            m = services.member_add(project=access.project, **form.cleaned_data)
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, f"{m.user.username} added as {m.get_role_display().lower()}.")
            return redirect("projects:members", slug=access.project.slug)
    return _members_page(request, access, form, status=400)


def _membership(access: ProjectAccess, pk: int) -> Membership:
    return get_object_or_404(Membership, project=access.project, pk=pk)


@require_POST
@project_view(Role.OWNER)
def member_role(request, access: ProjectAccess, pk: int):
    membership = _membership(access, pk)
    form = MemberRoleForm(request.POST)
    if form.is_valid():
        try:
            services.member_set_role(membership=membership, role=form.cleaned_data["role"])
            messages.success(request, f"{membership.user.username} is now {membership.role}.")
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
    return redirect("projects:members", slug=access.project.slug)


@require_POST
@project_view(Role.OWNER)
def member_remove(request, access: ProjectAccess, pk: int):
    membership = _membership(access, pk)
    try:
        services.member_remove(membership=membership)
        messages.success(request, f"{membership.user.username} removed from the project.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("projects:members", slug=access.project.slug)
