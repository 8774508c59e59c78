"""Errors the application layer raises. Each names its HTTP status and its gRPC status code,
so the HTTP and gRPC adapters map every error the same way, in one place: here."""

from __future__ import annotations


class ServiceError(Exception):
    http_status = 400
    grpc_status = "INVALID_ARGUMENT"  # a grpc.StatusCode name
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
    http_status, grpc_status, title = 404, "NOT_FOUND", "Not found"


class Conflict(ServiceError):
    """A stale expected version or a concurrent write; the caller should reload and retry."""

    http_status, grpc_status, title = 409, "ABORTED", "Conflict"


class FailedPrecondition(ServiceError):
    """The command is well-formed but the record's state does not allow it."""

    http_status, grpc_status, title = 409, "FAILED_PRECONDITION", "Failed precondition"


class Unauthenticated(ServiceError):
    """No valid bearer token."""

    http_status, grpc_status, title = 401, "UNAUTHENTICATED", "Unauthenticated"


class PermissionDenied(ServiceError):
    """A valid caller whose roles do not allow the action."""

    http_status, grpc_status, title = 403, "PERMISSION_DENIED", "Forbidden"
