"""The emulator's errors, the way AWS JSON 1.1 reports them: ``__type`` (the code), ``message`` and an HTTP
status. The server turns an :class:`AwsError` into that response body; the client side reads it back through
botocore like any Cost Explorer error."""

from __future__ import annotations

__all__ = ["AwsError", "validation"]


class AwsError(Exception):
    """An error the way AWS JSON 1.1 reports it: a code (``__type``), a message and an HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def validation(message: str) -> AwsError:
    return AwsError("ValidationException", message)
