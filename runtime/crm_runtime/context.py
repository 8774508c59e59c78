"""A bounded context declares itself once; everything that runs it is derived.

Each service package `crm_<name>` has a `context` module with `CONTEXT = Context(...)`:
its settings, application factory, HTTP routers, gRPC services, the events it publishes,
the consumers it runs and the commands it sends. From that one declaration:

- `python -m crm_runtime <context> <api|relay|worker|dispatcher>` runs any of its processes;
- `processes()` is the process list of `make run`, the compose check and the image;
- `publishing_topics()` is the list of topics to create.

Adding a context is a new package with a `context` module (found on the import path by
`discover`); adding an aggregate touches only its own service folder, proto and tests.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from crm_runtime.settings import ServiceSettings

if TYPE_CHECKING:
    from fastapi import APIRouter

    from crm_runtime.auth import Resource
    from crm_runtime.commands import CommandMap
    from crm_runtime.events import EventMap
    from crm_runtime.grpc_server import Registration

PACKAGE_PREFIX = "crm_"
NOT_CONTEXTS = {"crm_runtime", "crm_devstack"}
KINDS = ("api", "relay", "worker", "dispatcher")


@dataclass(frozen=True)
class Consumer:
    """A consumer of other contexts' topics, run by the context's worker process.

    `handler(settings, app)` builds what receives the decoded events (see crm_runtime.consumer).
    """

    name: str
    topics: Sequence[str]  # contexts whose event topics it reads, e.g. ("leads",)
    handler: Callable[[Any, Any], Any]


@dataclass(frozen=True)
class Periodic:
    """Work the context's worker process runs every `interval_setting` seconds (a settings
    field), beside its consumers: e.g. firing the workflow's due timers.

    `handler(settings, app)` builds a synchronous step (called in a thread). A step must be
    safe to run in several worker instances at once and to repeat after a crash: its state
    is in the store, not in the process.
    """

    name: str
    interval_setting: str
    handler: Callable[[Any, Any], Callable[[], Any]]


@dataclass(frozen=True)
class Process:
    context: Context
    kind: str  # one of KINDS

    @property
    def name(self) -> str:
        return self.context.name if self.kind == "api" else f"{self.context.name}-{self.kind}"

    @property
    def serves_http(self) -> bool:
        return self.kind == "api"

    @property
    def env_prefix(self) -> str:
        return str(self.context.settings.model_config.get("env_prefix", ""))

    @property
    def metrics_setting(self) -> str | None:
        """The settings field of this process's Prometheus port (the API serves /metrics itself)."""
        return None if self.kind == "api" else f"{self.kind}_metrics_port"

    def argv(self) -> list[str]:
        """Arguments after `python`: the same in `make run`, the compose file and the image."""
        return ["-m", "crm_runtime", self.context.name, self.kind]


@dataclass(frozen=True)
class Context:
    name: str  # the service: "leads", "service-desk"
    settings: type[ServiceSettings]
    # Builds the service's application (its store) from its settings.
    application: Callable[[Any], Any]
    # The context's name in topics and proto packages ("servicedesk"); None: publishes nothing.
    topic: str | None = None
    events: EventMap | None = None
    http: Callable[[Any], Sequence[APIRouter]] | None = None
    grpc: Callable[[Any], Sequence[Registration]] | None = None
    consumers: Sequence[Consumer] = ()
    periodic: Sequence[Periodic] = ()
    commands: CommandMap | None = None
    # The records it owns and which role may do what with them (see crm_runtime.auth).
    resources: Sequence[Resource] = ()
    # The check behind /readyz's "store": raises when the store is unreachable.
    store_check: Callable[[Any], Callable[[], None]] = field(default=lambda app: app.check_store)

    def processes(self) -> list[Process]:
        kinds = []
        if self.http is not None or self.grpc is not None:
            kinds.append("api")
        if self.events is not None and self.events.published:
            kinds.append("relay")
        if self.consumers or self.periodic:
            kinds.append("worker")
        if self.commands is not None:
            kinds.append("dispatcher")
        return [Process(self, kind) for kind in kinds]

    def load_settings(self) -> Any:
        return self.settings()


def _context_packages() -> list[str]:
    return sorted(module.name for module in pkgutil.iter_modules()
                  if module.name.startswith(PACKAGE_PREFIX) and module.name not in NOT_CONTEXTS)


@cache
def discover() -> tuple[Context, ...]:
    """Every context on the import path, in the order of their HTTP ports (as in DESIGN.md)."""
    found = []
    for package in _context_packages():
        if importlib.util.find_spec(f"{package}.context") is None:
            continue
        module = importlib.import_module(f"{package}.context")
        context = getattr(module, "CONTEXT", None)
        if not isinstance(context, Context):
            raise TypeError(f"{package}.context must define CONTEXT = Context(...)")
        found.append(context)
    names = [c.name for c in found]
    if len(set(names)) != len(names):
        raise ValueError(f"two contexts share a name: {sorted(names)}")
    return tuple(sorted(found, key=lambda c: c.settings.model_fields["http_port"].default))


def get(name: str) -> Context:
    for context in discover():
        if context.name == name:
            return context
    known = ", ".join(c.name for c in discover())
    raise LookupError(f"no context named {name!r}; known: {known}")


def processes() -> list[Process]:
    return [process for context in discover() for process in context.processes()]


def publishing_topics() -> list[str]:
    """The context names of every event topic (crm.<name>.events.v1)."""
    return [c.topic for c in discover() if c.topic is not None]
