"""Who may see and do what in a project.

The rule everywhere: an object of a project the user is not a member of does not exist
for them (404); a member whose role is too low for the action gets 403. Superusers act
as owners of every project (they administer the installation).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404

from .models import ROLE_RANK, Membership, Project, Role


@dataclass(frozen=True)
class ProjectAccess:
    project: Project
    role: str

    def allows(self, min_role: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[min_role]

    @property
    def can_edit(self) -> bool:
        return self.allows(Role.EDITOR)

    @property
    def is_owner(self) -> bool:
        return self.allows(Role.OWNER)


def project_role(*, user, project: Project) -> str | None:
    if not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return Role.OWNER
    membership = Membership.objects.filter(project=project, user=user).only("role").first()
    return membership.role if membership else None


def project_access(*, user, slug: str, min_role: str = Role.VIEWER) -> ProjectAccess:
    """The project with this slug as seen by `user`: 404 if not a member, 403 if role too low."""
    project = Project.objects.filter(slug=slug).first()
    role = project_role(user=user, project=project) if project else None
    if role is None:
        raise Http404("No such project.")
    access = ProjectAccess(project=project, role=role)
    if not access.allows(min_role):
        raise PermissionDenied(f"This needs the {min_role} role in {project.name}; you are {role}.")
    return access


def project_view(min_role: str = Role.VIEWER):
    """Decorator for views under /p/<slug>/: resolves the project and checks the role.

    The view receives `access` (a ProjectAccess) instead of `slug`. Login is required.
    """
    def decorate(view):
        @login_required
        @wraps(view)
        def wrapper(request, slug, *args, **kwargs):
            access = project_access(user=request.user, slug=slug, min_role=min_role)
            request.project_access = access
            return view(request, access, *args, **kwargs)

        return wrapper

    return decorate
