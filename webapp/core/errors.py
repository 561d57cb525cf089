"""What error pages may show. With DEBUG on, Django's traceback page lists every setting
and, under runserver, the process environment in `request.META` (DATABASE_URL with its
password, broker URLs, ...). Name-based cleansing misses such values, so this filter drops
settings entirely and keeps only the request's own headers and CGI basics."""

from django.views.debug import SafeExceptionReporterFilter

_META_KEPT = {"REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE", "CONTENT_LENGTH",
              "SERVER_NAME", "SERVER_PORT", "REMOTE_ADDR", "SCRIPT_NAME", "SERVER_PROTOCOL"}


class NoSettingsExceptionReporterFilter(SafeExceptionReporterFilter):
    def get_safe_settings(self):
        return {}

    def get_safe_request_meta(self, request):
        if not hasattr(request, "META"):
            return {}
        return {key: self.cleanse_setting(key, value) for key, value in request.META.items()
                if key.startswith("HTTP_") or key in _META_KEPT}
