"""Requests no part of the app can handle are refused before any view sees them."""

from django.http import HttpResponseBadRequest, JsonResponse

MESSAGE = "The address or its query contains a NUL character (%00), which nothing here accepts."


class RejectNulMiddleware:
    """A NUL in a URL or query reaches database lookups, and PostgreSQL refuses NUL in text
    with an error (a 500); answer 400 for every view at once."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path or any("\x00" in k or any("\x00" in v for v in vs)
                                         for k, vs in request.GET.lists()):
            if request.path.startswith("/v1/"):
                return JsonResponse({"error": {"message": MESSAGE, "type": "invalid_request_error",
                                               "param": None, "code": "invalid_value"}}, status=400)
            return HttpResponseBadRequest(MESSAGE)
        return self.get_response(request)
