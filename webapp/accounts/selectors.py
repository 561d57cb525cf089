from django.db.models import QuerySet

from .models import ApiKey


def api_key_list(*, user) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(user=user)
