"""Requests no part of the app can handle are refused before any view sees them."""

from django.http import HttpResponseBadRequest, JsonResponse

MESSAGE = "The address, its query or the form contains a NUL character (%00), which nothing here accepts."
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class RejectNulMiddleware:
    """A NUL in a URL, a query or a form field reaches database lookups and writes, and
    PostgreSQL refuses NUL in text with an error (a 500); answer 400 for every view at once.
    JSON bodies are refused by the API's strict parser; form bodies are parsed here, as the
    CSRF check parses them anyway."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        form = request.POST if request.method == "POST" and request.content_type in FORM_TYPES else None
        if "\x00" in request.path or _has_nul(request.GET) or (form is not None and _has_nul(form)):
            if request.path.startswith("/v1/"):
                return JsonResponse({"error": {"message": MESSAGE, "type": "invalid_request_error",
                                               "param": None, "code": "invalid_value"}}, status=400)
            return HttpResponseBadRequest(MESSAGE)
        return self.get_response(request)


def _has_nul(query) -> bool:
    return any("\x00" in key or any("\x00" in value for value in values) for key, values in query.lists())
