"""Log filters."""

import logging


class ClientErrorsWithoutTraceback(logging.Filter):
    """A 403 or 404 is the app working as intended: one line, not a stack trace per request.

    Django logs every PermissionDenied with its traceback (`django.request`, WARNING); server
    errors (5xx) keep theirs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if status is not None and status < 500:
            record.exc_info = None
            record.exc_text = None
        return True
