"""Errors the application layer raises, and the one table that maps them to protocols.

The errors know nothing of HTTP or gRPC; `STATUS` below is the only place that says what
each one answers on the wire, and both adapters (crm_runtime.http, crm_runtime.grpc_server,
crm_runtime.auth) read it through `status_of`.
"""

from __future__ import annotations

from typing import NamedTuple


class ServiceError(Exception):
    """A request the service refuses; nothing was changed."""


class InvalidField(ServiceError):
    """A command's field is missing or malformed."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(ServiceError):
    pass


class Conflict(ServiceError):
    """A stale expected version or a concurrent write; the caller should reload and retry."""


class AlreadyExists(ServiceError):
    """A record with the same natural key (a product's SKU) exists: unlike a Conflict,
    retrying never helps."""


class FailedPrecondition(ServiceError):
    """The command is well-formed but the record's state does not allow it."""


class Unauthenticated(ServiceError):
    """No valid bearer token."""


class PermissionDenied(ServiceError):
    """A valid caller whose roles do not allow the action."""


class Status(NamedTuple):
    http: int
    grpc: str  # a grpc.StatusCode name
    title: str


STATUS: dict[type[ServiceError], Status] = {
    ServiceError: Status(400, "INVALID_ARGUMENT", "Bad request"),
    InvalidField: Status(422, "INVALID_ARGUMENT", "Invalid field"),
    NotFound: Status(404, "NOT_FOUND", "Not found"),
    Conflict: Status(409, "ABORTED", "Conflict"),
    AlreadyExists: Status(409, "ALREADY_EXISTS", "Already exists"),
    FailedPrecondition: Status(409, "FAILED_PRECONDITION", "Failed precondition"),
    Unauthenticated: Status(401, "UNAUTHENTICATED", "Unauthenticated"),
    PermissionDenied: Status(403, "PERMISSION_DENIED", "Forbidden"),
}


def status_of(error: ServiceError) -> Status:
    """The status of the error's nearest class in the table (a subclass inherits its base's)."""
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return STATUS[ServiceError]
