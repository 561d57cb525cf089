"""The REST API under /v1/, in OpenAI's shapes where OpenAI has an equivalent."""

from django.urls import path

from webapp.datasets import api as files_api

urlpatterns = [
    path("files", files_api.files, name="api_files"),
    path("files/<str:file_id>", files_api.file_detail, name="api_file_detail"),
    path("files/<str:file_id>/content", files_api.file_content, name="api_file_content"),
]
