"""The command outbox: a decision and the command that carries it out are one stored event.

A consumer that decides something another service must do (assign a lead, escalate a
ticket) only saves its decision, in its own store, in the transaction of the decision. The
context's `CommandMap` says which stored events are commands and builds each one; the
dispatcher process follows the store's notification log, delivers each command over gRPC
with its idempotency key, and advances its position only after the target acknowledged.
So decided means delivered, whatever process dies when, and a re-delivered command
changes nothing at the target.

A command whose target offers its batched form (`Command.to(..., batch_method=...)`, see
crm/common/v1/commands.proto) travels with the commands of the same kind decided beside it:
one call and one transaction at the target for a run of them, each with its own trace
context. What the target refuses in a batch, and everything after it, is delivered again
one command at a time, so order per key and the retry and rejection rules stay those of a
single command.
"""

from __future__ import annotations

import asyncio
import signal
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from eventsourcing.persistence import Notification, Tracking
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from prometheus_client import Counter, Gauge
from tenacity import RetryCallState

from crm.common.v1 import commands_pb2
from crm_runtime import logs, retries, stop_deadline, tracing
from crm_runtime.auth import ServiceAccount
from crm_runtime.commit_signal import IDLE_LOOK_SECONDS, CommitSignal
from crm_runtime.eventstore import ServiceApplication, trace_context
from crm_runtime.settings import ServiceSettings

log = logs.get(__name__)
E = TypeVar("E")

DISPATCHED = Counter("crm_dispatcher_commands_total", "Commands delivered by outcome",
                     ["dispatcher", "method", "outcome"])
CALLS = Counter("crm_dispatcher_calls_total", "gRPC calls made (a batch is one call)",
                ["dispatcher", "method"])
POSITION = Gauge("crm_dispatcher_position", "Last notification id whose commands were delivered",
                 ["dispatcher"])

# The target may accept the command later: it is down, slow, busy, lost a write race, or
# the platform's credentials are being fixed. Retried until it succeeds, never skipped.
RETRYABLE = frozenset({
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
})


@dataclass(frozen=True)
class Batch:
    """The batched form of a command: the target's method that takes many at once."""

    method: str  # full method name, "/crm.leads.v1.LeadsService/AssignLeads"
    request_type: type[Message]  # requests = 1 (the commands), contexts = 2
    response_type: type[Message]  # results = 1 (crm.common.v1.CommandResult)

    @classmethod
    def of(cls, service: ServiceDescriptor, method: str, item_type: Any) -> Batch:
        descriptor = service.methods_by_name[method]
        requests = descriptor.input_type.fields_by_name.get("requests")
        contexts = descriptor.input_type.fields_by_name.get("contexts")
        results = descriptor.output_type.fields_by_name.get("results")
        shaped = (requests is not None and requests.message_type is item_type
                  and _repeated(requests) and contexts is not None and _repeated(contexts)
                  and contexts.message_type is commands_pb2.CommandContext.DESCRIPTOR
                  and results is not None and _repeated(results)
                  and results.message_type is commands_pb2.CommandResult.DESCRIPTOR)
        if not shaped:
            raise TypeError(f"{method} is not the batched form of a {item_type.full_name} command "
                            "(see crm/common/v1/commands.proto)")
        return cls(f"/{service.full_name}/{method}", GetMessageClass(descriptor.input_type),
                   GetMessageClass(descriptor.output_type))


def _repeated(field_descriptor: Any) -> bool:
    return bool(field_descriptor.is_repeated)


@dataclass(frozen=True)
class Command:
    """One call to another service's gRPC API, on behalf of a stored decision."""

    target: str  # the owning service, e.g. "leads"
    method: str  # full method name, "/crm.leads.v1.LeadsService/AssignLead"
    request: Message
    response_type: type[Message]
    idempotency_key: str  # stable per decision: a repeat changes nothing at the target
    ordering_key: str  # commands with the same key are delivered in decision order
    context: Mapping[str, str] = field(default_factory=dict)  # trace context of the decision
    batch: Batch | None = None  # the target's batched form of this command, if it has one

    @classmethod
    def to(cls, target: str, service: ServiceDescriptor, method: str, request: Message, *,
           idempotency_key: str, ordering_key: str, batch_method: str | None = None) -> Command:
        descriptor = service.methods_by_name[method]
        if request.DESCRIPTOR is not descriptor.input_type:
            raise TypeError(f"{method} takes {descriptor.input_type.full_name}, "
                            f"not {request.DESCRIPTOR.full_name}")
        batch = None if batch_method is None else Batch.of(service, batch_method, descriptor.input_type)
        return cls(target, f"/{service.full_name}/{method}", request,
                   GetMessageClass(descriptor.output_type), idempotency_key, ordering_key, batch=batch)


class CommandMap:
    """Stored event class -> the command it carries; events not listed carry none."""

    def __init__(self) -> None:
        self._builders: dict[type, Callable[[Any], Command | None]] = {}

    def sends(self, *event_classes: type) -> Callable[[Callable[[E], Command | None]], Callable[[E], Command | None]]:
        def register(fn: Callable[[E], Command | None]) -> Callable[[E], Command | None]:
            for cls in event_classes:
                if cls in self._builders:
                    raise ValueError(f"{cls.__qualname__} already sends a command")
                self._builders[cls] = fn
            return fn

        return register

    def command_for(self, domain_event: Any) -> Command | None:
        builder = self._builders.get(type(domain_event))
        return None if builder is None else builder(domain_event)


class Rejected(Exception):
    """The target refused the command for a reason retrying will not change."""


class CommandClient:
    """gRPC calls to the platform's services: one channel per target, a deadline per call,
    the trace context and the service account's token as metadata."""

    def __init__(self, targets: Mapping[str, str], account: ServiceAccount, timeout: float):
        self.targets = dict(targets)
        self.account = account
        self.timeout = timeout
        self._channels: dict[str, grpc.aio.Channel] = {}

    def _channel(self, target: str) -> grpc.aio.Channel:
        if target not in self._channels:
            if target not in self.targets:
                raise LookupError(f"no address for service {target!r}: set its *_GRPC_TARGET setting")
            self._channels[target] = grpc.aio.insecure_channel(self.targets[target])
        return self._channels[target]

    async def send(self, command: Command) -> Message:
        """Delivers once; raises `retries.TransientError` when retrying may help, else `Rejected`."""
        with tracing.bound_from_headers(command.context):
            metadata = (tracing.grpc_metadata() + self.account.grpc_metadata()
                        + [("idempotency-key", command.idempotency_key)])
            return await self._call(command.target, command.method, command.request,
                                    command.response_type, metadata)

    async def send_batch(self, commands: Sequence[Command]) -> list[Any]:
        """Delivers commands of one kind in one call of their batched form, each with its own
        trace context; returns their `CommandResult`s (errors as `send` raises them)."""
        batch = commands[0].batch
        assert batch is not None, "a batch of commands that have no batched form"
        contexts = []
        for command in commands:
            with tracing.bound_from_headers(command.context) as context:
                contexts.append(commands_pb2.CommandContext(headers=context))
        request = batch.request_type(requests=[command.request for command in commands], contexts=contexts)
        with tracing.bound_from_headers(commands[0].context):
            metadata = tracing.grpc_metadata() + self.account.grpc_metadata()
            response: Any = await self._call(commands[0].target, batch.method, request,
                                             batch.response_type, metadata)
        return list(response.results)

    async def _call(self, target: str, method: str, request: Message, response_type: type[Message],
                    metadata: list[tuple[str, str]]) -> Message:
        call = self._channel(target).unary_unary(
            method, request_serializer=request.__class__.SerializeToString,
            response_deserializer=response_type.FromString)
        try:
            return await call(request, timeout=self.timeout, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            detail = f"{method} {exc.code().name}: {exc.details()}"
            if exc.code() in RETRYABLE:
                raise retries.TransientError(detail) from exc
            raise Rejected(detail) from exc

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()


class CommandDispatcher:
    """Follows an application's notification log and delivers the commands it holds."""

    def __init__(self, app: ServiceApplication, commands: CommandMap, client: CommandClient, *,
                 name: str, batch_size: int = 500, poll_interval: float = 0.05,
                 concurrency: int = 16, max_rejections: int = 5, batches_in_flight: int = 8,
                 max_commands_per_call: int = 100):
        self.app = app
        self.commands = commands
        self.client = client
        self.name = name
        self.tracking_name = f"dispatcher:{name}"
        self.tracking = app.tracking_recorder()
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.max_rejections = max_rejections
        self.batches_in_flight = batches_in_flight
        self.max_commands_per_call = max_commands_per_call
        self._slots = asyncio.Semaphore(concurrency)
        self.stopping = asyncio.Event()
        # PostgreSQL wakes the dispatcher when the log grows; then it looks again only
        # every `idle_look` as a safety net. Elsewhere it looks every `poll_interval`.
        self.commits = CommitSignal(app.recorder, name)
        self.idle_look = IDLE_LOOK_SECONDS

    def position(self) -> int:
        return self.tracking.max_tracking_id(self.tracking_name) or 0

    def commands_in(self, batch: Sequence[Notification]) -> list[Command]:
        found = []
        for notification in batch:
            domain_event = self.app.mapper.to_domain_event(notification)
            command = self.commands.command_for(domain_event)
            if command is not None:
                found.append(Command(**{**command.__dict__, "context": trace_context(domain_event)}))
        return found

    async def run(self) -> None:
        """Delivers the log's commands until stopped. The log is read on while earlier
        commands are in flight (at most `concurrency` calls at a time, in order per ordering
        key, at most `batches_in_flight` batches read ahead); the recorded position is the
        last notification whose commands, and every one's before it, were acknowledged. A
        stop leaves the rest unrecorded: it is delivered again after the restart."""
        position = read = await asyncio.to_thread(self.position)
        log.info("dispatcher.started", dispatcher=self.name, position=position,
                 woken_by_commits=self.commits.available)
        in_flight: deque[tuple[int, list[asyncio.Future[None]]]] = deque()
        tails: dict[str, asyncio.Future[None]] = {}
        self.commits.start()
        try:
            while not self.stopping.is_set():
                position = await self._record_delivered(in_flight, position)
                if len(in_flight) >= self.batches_in_flight:
                    await self._wait_for_oldest(in_flight)
                    continue
                self.commits.clear()  # before the read: a commit after it wakes the wait below
                batch = await asyncio.to_thread(
                    self.app.recorder.select_notifications, start=read, limit=self.batch_size,
                    inclusive_of_start=False)
                if not batch:
                    await self._idle(in_flight)
                    continue
                commands = await asyncio.to_thread(self.commands_in, batch)
                in_flight.append((batch[-1].id, [self._after_earlier(tails, calls)
                                                 for calls in self.calls_for(commands)]))
                read = batch[-1].id
        finally:
            for _, tasks in in_flight:
                for task in tasks:
                    task.cancel()
            await asyncio.to_thread(self.commits.stop)
        log.info("dispatcher.stopped", dispatcher=self.name, position=position)

    def calls_for(self, commands: Sequence[Command]) -> list[list[Command]]:
        """The commands, in order, cut into calls: a run of commands with the same batched
        form (up to `max_commands_per_call`) is one call, any other command one of its own."""
        calls: list[list[Command]] = []
        for command in commands:
            last = calls[-1] if calls else None
            if (command.batch is not None and last is not None and last[0].batch == command.batch
                    and last[0].target == command.target and len(last) < self.max_commands_per_call):
                last.append(command)
            else:
                calls.append([command])
        return calls

    def _after_earlier(self, tails: dict[str, asyncio.Future[None]],
                       commands: list[Command]) -> asyncio.Future[None]:
        """Delivers `commands` (one call) once every earlier command with one of their
        ordering keys is delivered."""
        keys = list(dict.fromkeys(command.ordering_key for command in commands))
        earlier = list(dict.fromkeys(tails[key] for key in keys if key in tails))

        async def in_turn() -> None:
            for task in earlier:
                await task
            async with self._slots:
                await self.deliver_all(commands)

        task = asyncio.ensure_future(in_turn())
        for key in keys:
            tails[key] = task

        def forget(done: asyncio.Future[None]) -> None:
            for key in keys:
                if tails.get(key) is done:
                    del tails[key]

        task.add_done_callback(forget)
        return task

    async def _record_delivered(self, in_flight: deque[tuple[int, list[asyncio.Future[None]]]],
                                position: int) -> int:
        """Records the position after the oldest batches whose commands are all delivered."""
        delivered = None
        while in_flight and all(task.done() for task in in_flight[0][1]):
            last, tasks = in_flight.popleft()
            for task in tasks:
                task.result()  # raises what a delivery raised (a bug: the process restarts)
            delivered = last
        if delivered is not None:
            await asyncio.to_thread(self.tracking.insert_tracking, Tracking(self.tracking_name, delivered))
            POSITION.labels(self.name).set(delivered)
            return delivered
        return position

    async def _wait_for_oldest(self, in_flight: deque[tuple[int, list[asyncio.Future[None]]]],
                               timeout: float | None = None, also: asyncio.Future[Any] | None = None) -> None:
        """Waits until the oldest batch in flight is delivered, the dispatcher stops,
        `also` is done, or `timeout` passes."""
        tasks = in_flight[0][1]
        if not tasks:
            return
        stop: asyncio.Future[Any] = asyncio.ensure_future(self.stopping.wait())
        everything: asyncio.Future[Any] = asyncio.gather(*tasks, return_exceptions=True)
        try:
            await asyncio.wait([everything, stop, *([also] if also else [])], timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()

    async def _idle(self, in_flight: deque[tuple[int, list[asyncio.Future[None]]]]) -> None:
        """Caught up with the log: waits for a commit (or the next look), the oldest batch in
        flight to be delivered (its position is then recorded), or the stop."""
        timeout = self.idle_look if self.commits.available else self.poll_interval
        committed: asyncio.Future[Any] | None = (
            asyncio.ensure_future(self.commits.wait(timeout)) if self.commits.available else None)
        try:
            if in_flight:
                await self._wait_for_oldest(in_flight, timeout=timeout, also=committed)
            elif committed is not None:
                stop = asyncio.ensure_future(self.stopping.wait())
                try:
                    await asyncio.wait([committed, stop], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stop.cancel()
            else:
                await self._pause(timeout)
        finally:
            if committed is not None:
                committed.cancel()

    async def deliver_all(self, commands: list[Command]) -> None:
        """Delivers commands of one call: a batch in one call of its batched form; what the
        target refused in it, and what came after, one at a time (`deliver`)."""
        applied = 0
        if len(commands) > 1:
            results = await self._send_batch(commands)
            while applied < len(results) and results[applied].code == grpc.StatusCode.OK.value[0]:
                applied += 1
            for command in commands[:applied]:
                DISPATCHED.labels(self.name, command.method, "delivered").inc()
        for command in commands[applied:]:
            await self.deliver(command)

    async def _send_batch(self, commands: list[Command]) -> list[Any]:
        """The results of one batch call, retried while it fails transiently; none when the
        target refuses the call itself (an older release without the batched form, say)."""
        method = commands[0].batch.method if commands[0].batch else ""

        def log_retry(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.warning("dispatcher.retrying", dispatcher=self.name, method=method, commands=len(commands),
                        attempt=state.attempt_number, retry_in=round(state.upcoming_sleep, 2), error=str(error))

        async for attempt in retries.peer_command(log_retry):
            with attempt:
                try:
                    CALLS.labels(self.name, method).inc()
                    return await self.client.send_batch(commands)
                except Rejected as exc:
                    log.warning("dispatcher.batch_refused", dispatcher=self.name, method=method,
                                commands=len(commands), error=str(exc), fallback="one at a time")
                    return []
        return []  # not reached: the policy retries transient errors until they pass

    async def deliver(self, command: Command) -> None:
        """Sends until the target acknowledges (transient failures: for as long as it takes);
        a command the target keeps rejecting is logged and counted, and passed."""
        rejections = 0

        def log_retry(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.warning("dispatcher.retrying", dispatcher=self.name, method=command.method,
                        idempotency_key=command.idempotency_key, attempt=state.attempt_number,
                        retry_in=round(state.upcoming_sleep, 2), error=str(error))

        async for attempt in retries.peer_command(log_retry):
            with attempt:
                try:
                    CALLS.labels(self.name, command.method).inc()
                    await self.client.send(command)
                except Rejected as exc:
                    rejections += 1
                    if rejections < self.max_rejections:
                        raise retries.TransientError(str(exc)) from exc
                    log.error("dispatcher.command_rejected", dispatcher=self.name, method=command.method,
                              idempotency_key=command.idempotency_key, error=str(exc))
                    DISPATCHED.labels(self.name, command.method, "rejected").inc()
                    return
        DISPATCHED.labels(self.name, command.method, "delivered").inc()

    def stop(self) -> None:
        self.stopping.set()

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except TimeoutError:
            pass


def grpc_targets(settings: ServiceSettings) -> dict[str, str]:
    """Service name -> address, from the settings' `<service>_grpc_target` fields."""
    return {name.removesuffix("_grpc_target").replace("_", "-"): value
            for name, value in settings.model_dump().items()
            if name.endswith("_grpc_target") and isinstance(value, str)}


async def run_until_signalled(dispatcher: CommandDispatcher) -> None:
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        stop_deadline.arm()
        dispatcher.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    try:
        await dispatcher.run()
    finally:
        await dispatcher.client.close()
