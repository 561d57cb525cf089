from rest_framework import authentication, exceptions

from .services import api_key_authenticate


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <key>`, as the openai SDK sends it."""

    keyword = "bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() != self.keyword:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: use `Bearer <key>`.")
        user = api_key_authenticate(raw_key=header[1])
        if user is None:
            raise exceptions.AuthenticationFailed("Incorrect API key provided, or the key was revoked.")
        return user, None

    def authenticate_header(self, request):
        return "Bearer"
