"""Errors the application layer raises; the HTTP and gRPC adapters map them in one place."""

from __future__ import annotations


class ServiceError(Exception):
    http_status = 400
    title = "Bad request"


class InvalidField(ServiceError):
    """A command's field is missing or malformed; nothing was changed."""

    http_status = 422
    title = "Invalid field"

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(ServiceError):
    http_status = 404
    title = "Not found"


class Conflict(ServiceError):
    """A stale expected version or a concurrent write; the caller should reload and retry."""

    http_status = 409
    title = "Conflict"


class FailedPrecondition(ServiceError):
    """The command is well-formed but the record's state does not allow it."""

    http_status = 409
    title = "Failed precondition"
