"""Shared pieces of the OpenAI-compatible REST API under /v1/.

Errors always come as `{"error": {"message", "type", "param", "code"}}`, the shape the
openai SDK parses, with a fitting HTTP status.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db.models import QuerySet
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response
from rest_framework.views import exception_handler

from webapp.projects.access import ProjectAccess, project_access
from webapp.projects.models import Project, Role
from webapp.projects.selectors import project_list_for_user

PROJECT_HEADER = "OpenAI-Project"


class ApiError(exceptions.APIException):
    """An error with OpenAI's fields. `param` names the offending request field."""

    def __init__(self, message: str, *, status_code: int = 400, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.error = {"message": message, "type": type, "param": param, "code": code}


def _error(message: str, status_code: int, type_: str, code: str | None = None, param=None):
    return Response(
        {"error": {"message": message, "type": type_, "param": param, "code": code}},
        status=status_code,
    )


def openai_exception_handler(exc, context):
    if isinstance(exc, ApiError):
        return Response({"error": exc.error}, status=exc.status_code)
    if isinstance(exc, Http404):
        return _error(str(exc) or "Not found.", 404, "invalid_request_error", "not_found")
    if isinstance(exc, RequestDataTooBig):  # Django's own cap on bodies read into memory
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE // (1024 * 1024)
        return _error(f"The request body is larger than {limit} MB.", 413, "invalid_request_error",
                      "request_too_large")
    if isinstance(exc, PermissionDenied):
        return _error(str(exc) or "Permission denied.", 403, "invalid_request_error", "permission_denied")
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        message = str(exc.detail) if isinstance(exc, exceptions.AuthenticationFailed) else (
            "You didn't provide an API key. Send `Authorization: Bearer <key>`; create keys "
            "under “API keys” in the web app or with `manage.py create_api_key <user>`."
        )
        response.data = {"error": {"message": message, "type": "invalid_request_error",
                                   "param": None, "code": "invalid_api_key"}}
        response.status_code = status.HTTP_401_UNAUTHORIZED
        return response
    if isinstance(exc, exceptions.ValidationError) and isinstance(exc.detail, dict):
        param, detail = next(iter(exc.detail.items()))
        message = detail[0] if isinstance(detail, list) else detail
        response.data = {"error": {"message": f"{param}: {message}", "type": "invalid_request_error",
                                   "param": param, "code": "invalid_value"}}
        return response
    detail = exc.detail if hasattr(exc, "detail") else str(exc)
    if isinstance(detail, list):
        detail = "; ".join(str(d) for d in detail)
    response.data = {"error": {"message": str(detail), "type": "invalid_request_error",
                               "param": None, "code": getattr(exc, "default_code", None)}}
    return response


def api_projects(request) -> QuerySet[Project]:
    """Projects an API request may read: the one named in the header, else all of the user's."""
    slug = request.headers.get(PROJECT_HEADER)
    if slug:
        return Project.objects.filter(pk=project_access(user=request.user, slug=slug).project.pk)
    return project_list_for_user(user=request.user)


def api_project_for_write(request, *, min_role: str = Role.EDITOR) -> ProjectAccess:
    """The project a create request writes into: the header's, or the user's only project."""
    slug = request.headers.get(PROJECT_HEADER)
    if not slug:
        slugs = list(project_list_for_user(user=request.user).values_list("slug", flat=True)[:2])
        if len(slugs) != 1:
            raise ApiError(
                "You are a member of several projects (or none): name one with the "
                f"`{PROJECT_HEADER}` header, e.g. OpenAI(project=\"<project slug>\").",
                param=PROJECT_HEADER, code="project_required",
            )
        slug = slugs[0]
    return project_access(user=request.user, slug=slug, min_role=min_role)


class JsonOnlyNegotiation(DefaultContentNegotiation):
    """Our API always answers JSON (or raw bytes for file content) whatever `Accept` says.

    The openai SDK sends `Accept: application/binary` for file content, which DRF's default
    negotiation would refuse with 406.
    """

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type
