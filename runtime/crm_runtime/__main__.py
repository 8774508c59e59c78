"""`python -m crm_runtime <context> <api|relay|worker|dispatcher>`: runs one process of a
declared context (see crm_runtime.context). `python -m crm_runtime --list` lists them."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from crm_runtime import context as contexts
from crm_runtime import heap, service
from crm_runtime.context import Context


def run_api(ctx: Context, settings: Any) -> None:
    app = ctx.application(settings)
    service.launch(settings, ctx.store_check(app),
                   routers=ctx.http(app) if ctx.http else (),
                   registrations=ctx.grpc(app) if ctx.grpc else ())


def run_relay(ctx: Context, settings: Any) -> None:
    from crm_runtime import relay

    assert ctx.topic is not None and ctx.events is not None
    service.serve_metrics(settings.http_host, settings.relay_metrics_port)
    app = ctx.application(settings)
    relay.run_forever(relay.for_context(app, ctx.topic, ctx.events.to_message, settings.platform))


def run_worker(ctx: Context, settings: Any) -> None:
    from crm_runtime import consumer, worker

    consumer.main(settings, f"{ctx.name}-worker", lambda settings: worker.build(ctx, settings))


def run_dispatcher(ctx: Context, settings: Any) -> None:
    from crm_runtime import commands
    from crm_runtime.auth import ServiceAccount

    assert ctx.commands is not None
    service.serve_metrics(settings.http_host, settings.dispatcher_metrics_port)
    client = commands.CommandClient(
        commands.grpc_targets(settings), ServiceAccount(service.token_codec(settings), ctx.name),
        settings.command_timeout_seconds)
    dispatcher = commands.CommandDispatcher(
        ctx.application(settings), ctx.commands, client, name=ctx.name,
        poll_interval=settings.platform.relay_poll_interval_seconds)
    asyncio.run(commands.run_until_signalled(dispatcher))


RUNNERS = {"api": run_api, "relay": run_relay, "worker": run_worker, "dispatcher": run_dispatcher}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crm_runtime")
    parser.add_argument("context", nargs="?", help="a declared context, e.g. leads")
    parser.add_argument("kind", nargs="?", choices=contexts.KINDS)
    parser.add_argument("--list", action="store_true", help="list every process of every context")
    args = parser.parse_args(argv)
    if args.list or not args.context:
        for process in contexts.processes():
            print(f"{process.name:<20} python {' '.join(process.argv())}")
        return 0
    ctx = contexts.get(args.context)
    kinds = [process.kind for process in ctx.processes()]
    if args.kind not in kinds:
        parser.error(f"context {ctx.name} runs {', '.join(kinds)}, not {args.kind}")
    settings = ctx.settings()
    service.configure_logging(settings, ctx.name if args.kind == "api" else f"{ctx.name}-{args.kind}")
    heap.freeze_long_lived()
    RUNNERS[args.kind](ctx, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
