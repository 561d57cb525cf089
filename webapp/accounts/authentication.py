from axes.handlers.proxy import AxesProxyHandler
from django.contrib.auth.signals import user_login_failed
from rest_framework import authentication, exceptions

from .services import api_key_authenticate

# Failed API keys are counted per client address (django-axes, like failed logins): keys are
# unguessable, but a client hammering the server with wrong keys is stopped early.
API_KEY_CREDENTIALS = {"username": "(api key)"}


class ApiKeyThrottled(exceptions.Throttled):
    default_detail = "Too many requests with a wrong API key from your address."


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <key>`, as the openai SDK sends it."""

    keyword = "bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() != self.keyword:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: use `Bearer <key>`.")
        django_request = request._request
        if AxesProxyHandler.is_locked(django_request, credentials=API_KEY_CREDENTIALS):
            from .views import lockout_minutes

            raise ApiKeyThrottled(detail=(
                f"Too many requests with a wrong API key from your address; try again in "
                f"{lockout_minutes()} minutes."
            ))
        user = api_key_authenticate(raw_key=header[1])
        if user is None:
            user_login_failed.send(sender=__name__, credentials=API_KEY_CREDENTIALS, request=django_request)
            raise exceptions.AuthenticationFailed("Incorrect API key provided, or the key was revoked.")
        return user, None

    def authenticate_header(self, request):
        return "Bearer"
