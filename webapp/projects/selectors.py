from django.db.models import Count, QuerySet

from .models import Membership, Project


def project_list_for_user(*, user) -> QuerySet[Project]:
    qs = Project.objects.all() if user.is_superuser else Project.objects.filter(members=user)
    return qs.annotate(dataset_count=Count("datasets", distinct=True)).order_by("name")


def membership_list(*, project: Project) -> QuerySet[Membership]:
    return project.memberships.select_related("user").order_by("user__username")
