"""Principals and role permissions: who is calling, and whether they may do this.

Every API call carries a bearer token: an HS256 JWT signed with the platform's secret
(CRM_AUTH_SECRET, or the secret file: see crm_runtime.secret_file) whose
`sub` is the subject and `roles` its roles (service accounts are subjects too, e.g.
"service:workflow" with the "service" role); an optional `groups` claim names the teams
the subject works in (what an agent sees: crm_runtime.ownership). Checking it happens in
one place per protocol: the FastAPI dependency `require(resource, action)` and the gRPC
`AuthInterceptor`, which reads each service's method-to-permission table.
"""

from __future__ import annotations

import argparse
import contextvars
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import grpc
import jwt
import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from crm_runtime import logs, tracing
from crm_runtime.errors import PermissionDenied, Unauthenticated, status_of

log = logs.get(__name__)
ISSUER = "crm-platform"


class Action(StrEnum):
    VIEW = "view"
    CREATE = "create"
    EDIT = "edit"
    DELETE = "delete"
    ASSIGN = "assign"
    EXPORT = "export"


ALL_ACTIONS = frozenset(Action)


@dataclass(frozen=True)
class Role:
    description: str
    # Record visibility (crm_runtime.ownership): a role that does not see all records sees
    # the ones it owns, and with `sees_group_records` also those of the caller's groups (the
    # token's `groups` claim) and those assigned to the caller.
    sees_all_records: bool = True
    sees_group_records: bool = False


# The role model: the platform's roles. What each role may do with a resource is declared
# by the service that owns the resource (`Resource` below), never here.
ROLES: dict[str, Role] = {
    "admin": Role("everything, on every service"),
    "sales_manager": Role("runs a sales team: every record of the team"),
    "sales_rep": Role("works their own records", sees_all_records=False),
    "analyst": Role("reads reports"),
    "service": Role("service accounts calling other services (e.g. service:workflow)"),
    "agent": Role("works the service desk's tickets: those of their groups and those assigned to them",
                  sees_all_records=False, sees_group_records=True),
}

# A group in a token's `groups` claim: a lower-case name, as the service desk and the
# workflow write groups (matched exactly); a token names at most MAX_TOKEN_GROUPS.
GROUP_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
MAX_TOKEN_GROUPS = 100


def _group_names(groups: object) -> frozenset[str] | None:
    """The groups of a claim, or None when it is not a list of at most MAX_TOKEN_GROUPS names."""
    if not isinstance(groups, (list, tuple, set, frozenset)) or len(groups) > MAX_TOKEN_GROUPS:
        return None
    if not all(isinstance(group, str) and GROUP_NAME.fullmatch(group) for group in groups):
        return None
    return frozenset(groups)


@dataclass(frozen=True)
class Permission:
    """What an operation needs: an action on a resource. Declared once per operation and
    used by both its HTTP route (`require`) and its gRPC method (`grpc_server.rpc`)."""

    resource: str
    action: Action
    # Open to callers without a bearer token: the request carries its own credential (a
    # survey answer's single-use token). Declared with `Resource.public(action)`.
    public: bool = False

    def __str__(self) -> str:
        return f"{self.resource}:{self.action}" + (" (public)" if self.public else "")


# resource -> role -> actions, filled by the `Resource` declarations a process imports.
_GRANTS: dict[str, dict[str, frozenset[Action]]] = {}


@dataclass(frozen=True)
class Resource:
    """A kind of record a service owns, and which role may do what with it (admin: all)."""

    name: str
    grants: Mapping[str, Iterable[Action]]

    def __post_init__(self) -> None:
        unknown = set(self.grants) - set(ROLES)
        if unknown:
            raise ValueError(f"resource {self.name!r} grants unknown role(s) {sorted(unknown)}")
        _GRANTS[self.name] = {role: frozenset(actions) for role, actions in self.grants.items()}

    def public(self, action: Action) -> Permission:
        """An operation anyone may call, token or not (the request proves itself)."""
        return Permission(self.name, action, public=True)

    def __getattr__(self, action: str) -> Permission:
        # `LEADS.create` is Permission("leads", Action.CREATE)
        try:
            return Permission(self.name, Action(action))
        except ValueError:
            raise AttributeError(action) from None


def granted(role: str, resource: str) -> frozenset[Action]:
    if role == "admin":
        return ALL_ACTIONS
    return _GRANTS.get(resource, {}).get(role, frozenset())


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[str]
    # The teams the subject works in (the token's `groups` claim): what an agent sees.
    groups: frozenset[str] = frozenset()

    def can(self, resource: str, action: str) -> bool:
        return any(action in granted(role, resource) for role in self.roles)

    def check(self, resource: str, action: str) -> Principal:
        if not self.can(resource, action):
            raise PermissionDenied(f"{self.subject} may not {action} {resource}")
        return self

    @property
    def sees_all_records(self) -> bool:
        return any(ROLES[role].sees_all_records for role in self.roles if role in ROLES)

    @property
    def sees_group_records(self) -> bool:
        return any(ROLES[role].sees_group_records for role in self.roles if role in ROLES)


_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)


def current_principal() -> Principal | None:
    return _principal.get()


def _bind(principal: Principal) -> None:
    _principal.set(principal)
    structlog.contextvars.bind_contextvars(principal=principal.subject)


DEFAULT_MAX_TTL_SECONDS = 24 * 3600
LEEWAY_SECONDS = 30
VERIFIED_TOKENS_KEPT = 4096


class TokenCodec:
    def __init__(self, secret: str, max_ttl_seconds: int = DEFAULT_MAX_TTL_SECONDS):
        if len(secret) < 32:
            raise ValueError("CRM_AUTH_SECRET must be at least 32 characters")
        self._secret = secret
        # A stolen token is good until it expires: no token may live longer than this.
        self.max_ttl_seconds = max_ttl_seconds
        # Verified tokens and when they expire: a caller sends the same token with every
        # request, and checking its signature and claims again was an eighth of a capture's
        # CPU. Only tokens that passed are kept, so garbage cannot fill it; bounded anyway.
        self._verified: dict[str, tuple[Principal, float]] = {}

    def issue(self, subject: str, roles: Iterable[str], ttl_seconds: int = 3600,
              groups: Iterable[str] = ()) -> str:
        roles, groups = list(roles), list(groups)
        unknown = set(roles) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown role(s): {', '.join(sorted(unknown))}")
        if not subject or not subject.strip():
            raise ValueError("a token needs a subject")
        if ttl_seconds > self.max_ttl_seconds:
            raise ValueError(f"a token may live at most {self.max_ttl_seconds} seconds")
        if _group_names(groups) is None:
            raise ValueError(f"groups must be at most {MAX_TOKEN_GROUPS} names of 1 to 64 lower-case letters, "
                             "digits, '-' or '_', starting with a letter or digit")
        now = int(time.time())
        claims: dict[str, Any] = {"sub": subject, "roles": sorted(roles), "iss": ISSUER, "iat": now,
                                  "exp": now + ttl_seconds}
        if groups:
            claims["groups"] = sorted(set(groups))
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def verify(self, token: str | None) -> Principal:
        if not token:
            raise Unauthenticated("a bearer token is required")
        known = self._verified.get(token)
        if known is not None:
            principal, expires = known
            if time.time() < expires:
                return principal
            self._verified.pop(token, None)
        principal, expires = self._verify(token)
        if len(self._verified) >= VERIFIED_TOKENS_KEPT:
            self._verified.clear()
        self._verified[token] = (principal, expires)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            # Leeway: the clocks of the issuing and the checking machine may differ a little.
            # PyJWT also refuses an `iat` in the future and non-integer times.
            claims = jwt.decode(token, self._secret, algorithms=["HS256"], issuer=ISSUER,
                                leeway=LEEWAY_SECONDS, options={"require": ["sub", "exp", "iat", "iss"]})
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from None
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject.strip():
            raise Unauthenticated("invalid token: the subject is empty")
        if int(claims["exp"]) - int(claims["iat"]) > self.max_ttl_seconds:  # both checked by PyJWT
            raise Unauthenticated(f"invalid token: it lives longer than {self.max_ttl_seconds} seconds")
        roles = claims.get("roles") or []
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise Unauthenticated("invalid token: roles must be a list of names")
        groups = _group_names(claims.get("groups") or [])
        if groups is None:
            raise Unauthenticated(f"invalid token: groups must be a list of at most {MAX_TOKEN_GROUPS} "
                                  "lower-case names")
        return (Principal(subject=subject, roles=frozenset(roles), groups=groups),
                int(claims["exp"]) + LEEWAY_SECONDS)


class ServiceAccount:
    """A service's own token for calls to other services, renewed before it expires."""

    def __init__(self, codec: TokenCodec, name: str, ttl_seconds: int = 3600):
        self.codec = codec
        self.subject = f"service:{name}"
        self.ttl = min(ttl_seconds, codec.max_ttl_seconds)
        self._token = ""
        self._renew_at = 0.0

    def token(self) -> str:
        if time.time() >= self._renew_at:
            self._token = self.codec.issue(self.subject, ["service"], self.ttl)
            self._renew_at = time.time() + self.ttl / 2
        return self._token

    def grpc_metadata(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.token()}")]


def _audit_denied(exc: Unauthenticated | PermissionDenied, principal: Principal | None,
                  **where: object) -> None:
    """The refused call's audit line: why, what it asked for, and who when the token was good."""
    who = {"principal": principal.subject} if principal is not None else {}
    log.warning("audit.denied", reason=str(exc), **who, **where)


# --- HTTP: one dependency -------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="JWT from `python -m crm_runtime.auth`")


def require(permission: Permission) -> Any:
    """Route dependency: the caller's principal, if it has the operation's permission
    (a public permission: None, and no token is read)."""
    resource, action = permission.resource, str(permission.action)

    if permission.public:
        async def anyone(request: Request) -> None:
            log.info("audit.access", resource=resource, action=action, principal=None)

        return Depends(anyone)

    # async: it runs in the request's own task, so the principal bound here is seen by the
    # handler, the application code it calls and every log line of the request.
    async def dependency(request: Request,
                         credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Principal:
        codec: TokenCodec = request.app.state.tokens
        principal = None
        try:
            principal = codec.verify(credentials.credentials if credentials else None)
            _bind(principal)
            principal.check(resource, action)
        except (Unauthenticated, PermissionDenied) as exc:
            _audit_denied(exc, principal, resource=resource, action=action, status=status_of(exc).http,
                          request=f"{request.method} {request.url.path}")
            raise
        log.info("audit.access", resource=resource, action=action)
        return principal

    return Depends(dependency)


# --- gRPC: one interceptor --------------------------------------------------------------

Permissions = Mapping[str, Permission]  # full method name -> permission


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Checks the bearer token and permission of every call to a protected service.

    Methods of the services in `protected` must appear in `permissions` (fail closed);
    health and reflection stay open so orchestrators and grpcurl can use them.
    """

    def __init__(self, codec: TokenCodec, permissions: Permissions, protected: Iterable[str]):
        self.codec = codec
        self.permissions = dict(permissions)
        self.protected = tuple(f"/{name}/" for name in protected)

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]],
                                handler_call_details: Any) -> Any:
        method = handler_call_details.method
        needed = self.permissions.get(method)
        if not method.startswith(self.protected) or (needed is not None and needed.public):
            # health, reflection and public methods: open, decoded safely too
            return _with_principal(await continuation(handler_call_details), None, method)
        if needed is None and await continuation(handler_call_details) is None:
            # A method this release does not have: UNIMPLEMENTED (a caller falls back to
            # another method), not a refusal it would retry as if credentials were at fault.
            return None
        metadata = dict(handler_call_details.invocation_metadata or ())
        header = metadata.get("authorization", "")
        token = header[7:] if isinstance(header, str) and header.lower().startswith("bearer ") else None
        principal = None
        try:
            principal = self.codec.verify(token)
            if needed is None:
                raise PermissionDenied(f"{method} is not open to any role")
            principal.check(needed.resource, str(needed.action))
        except (Unauthenticated, PermissionDenied) as exc:
            # The servicer never runs, so its trace context is bound here for this one line.
            code = status_of(exc).grpc
            with tracing.bound(_text(metadata.get("traceparent")), _text(metadata.get("x-correlation-id"))):
                _audit_denied(exc, principal, method=method, code=code)
            return _deny(grpc.StatusCode[code], str(exc))
        handler = await continuation(handler_call_details)
        return _with_principal(handler, principal, method)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None  # binary (-bin) metadata is bytes


def _deny(code: grpc.StatusCode, details: str) -> grpc.RpcMethodHandler:
    async def abort(_request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(code, details)

    return grpc.unary_unary_rpc_method_handler(abort)


def _with_principal(handler: Any, principal: Principal | None, method: str) -> Any:
    """The handler, binding `principal` (when given) and decoding the request itself.

    grpc would decode with the handler's deserializer before any of our code runs, and a
    malformed request (bad wire data, bad UTF-8 in a string field) would end as UNKNOWN with
    a logged traceback; here it is INVALID_ARGUMENT and one warning line.
    """
    if handler is None or handler.unary_unary is None:
        return handler
    inner = handler.unary_unary
    deserialize = handler.request_deserializer

    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if principal is not None:
            _bind(principal)  # crm_runtime.grpc_server.rpc writes the audit line in the call's context
        if deserialize is not None:
            try:
                request = deserialize(request)
            except Exception as exc:  # noqa: BLE001 - DecodeError, or whatever a decoder raises on bad bytes
                log.warning("grpc.malformed_request", method=method, size=len(request),
                            error=str(exc) or type(exc).__name__)
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the request is not a valid message")
        return await inner(request, context)

    return grpc.unary_unary_rpc_method_handler(
        call, request_deserializer=None,  # bytes in: decoded above
        response_serializer=handler.response_serializer)


def main() -> None:
    """`python -m crm_runtime.auth --subject alice --roles sales_rep`: prints a token
    (`--groups support,billing` for an agent's groups)."""
    from crm_runtime.secret_file import auth_secret, secret_file_path
    from crm_runtime.settings import PlatformSettings

    parser = argparse.ArgumentParser(prog="python -m crm_runtime.auth")
    parser.add_argument("--subject", required=True)
    parser.add_argument("--roles", required=True, help=f"comma-separated: {', '.join(ROLES)}")
    parser.add_argument("--groups", default="",
                        help="comma-separated groups the subject works in (an agent sees their tickets)")
    parser.add_argument("--ttl", type=int, default=None,
                        help="seconds (default 8 hours, at most CRM_AUTH_MAX_TOKEN_TTL_SECONDS)")
    args = parser.parse_args()
    settings = PlatformSettings()
    max_ttl = settings.auth_max_token_ttl_seconds
    ttl = min(8 * 3600, max_ttl) if args.ttl is None else args.ttl
    if not 0 < ttl <= max_ttl:
        parser.error(f"--ttl must be between 1 and {max_ttl} seconds (CRM_AUTH_MAX_TOKEN_TTL_SECONDS)")
    # The same secret the services use: CRM_AUTH_SECRET, else the platform's secret file.
    secret = auth_secret(settings)
    if secret is None:
        parser.exit(2, f"no token secret: set CRM_AUTH_SECRET, or start the platform once "
                       f"(`make run` creates {secret_file_path(settings)})\n")
    codec = TokenCodec(secret, max_ttl_seconds=max_ttl)
    try:
        print(codec.issue(args.subject, [r.strip() for r in args.roles.split(",") if r.strip()], ttl,
                          groups=[g.strip() for g in args.groups.split(",") if g.strip()]))
    except ValueError as exc:
        parser.error(str(exc))


if __name__ == "__main__":
    main()
