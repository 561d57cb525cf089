from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.text import slugify

from .models import Membership, Project, Role

SLUG_MAX = 32


def _unique_slug(name: str) -> str:
    # Short enough for a readable URL: whole words up to 32 characters.
    words = slugify(name).split("-")
    base = ""
    for word in words:
        if base and len(base) + 1 + len(word) > SLUG_MAX:
            break
        base = f"{base}-{word}" if base else word[:SLUG_MAX]
    base = base or "project"
    slug, n = base, 2
    while Project.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


@transaction.atomic
def project_create(*, name: str, owner, description: str = "") -> Project:
    name = name.strip()
    if not name:
        raise ValidationError({"name": "A project needs a name."})
    project = Project.objects.create(
        name=name, slug=_unique_slug(name), description=description.strip(), created_by=owner
    )
    Membership.objects.create(project=project, user=owner, role=Role.OWNER)
    return project


@transaction.atomic
def member_add(*, project: Project, username: str, role: str) -> Membership:
    user = get_user_model().objects.filter(username=username.strip(), is_active=True).first()
    if user is None:
        raise ValidationError({"username": f"No active user called “{username}”."})
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}."})
    if Membership.objects.filter(project=project, user=user).exists():
        raise ValidationError({"username": f"{user.username} is already a member."})
    return Membership.objects.create(project=project, user=user, role=role)


def _ensure_an_owner_remains(project: Project, excluding: Membership) -> None:
    others = project.memberships.filter(role=Role.OWNER).exclude(pk=excluding.pk)
    if excluding.role == Role.OWNER and not others.exists():
        raise ValidationError("A project must keep at least one owner.")


@transaction.atomic
def member_set_role(*, membership: Membership, role: str) -> Membership:
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}."})
    if role != Role.OWNER:
        _ensure_an_owner_remains(membership.project, membership)
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def member_remove(*, membership: Membership) -> None:
    _ensure_an_owner_remains(membership.project, membership)
    membership.delete()
