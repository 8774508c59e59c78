"""A context's worker: one faust app running every consumer the context declares, each with
its own Kafka consumer and consumer group, one task per partition (crm_runtime.consumer)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import faust

from crm_runtime import consumer, logs
from crm_runtime.context import Context, Periodic
from crm_runtime.events import registry_for
from crm_runtime.settings import ServiceSettings
from crm_runtime.topics import events_topic


def app_id(ctx: Context) -> str:
    """The faust app id of the context's worker, which is also its consumer group."""
    return f"crm-{ctx.name}"


def consumer_name(ctx: Context, declared: Any) -> str:
    return f"{ctx.name}-{declared.name}"


def consumer_groups(ctx: Context, topic_prefix: str) -> list[str]:
    """The Kafka consumer groups of the context's worker: one per declared consumer
    (`EventConsumer.group_id`), e.g. `crm-analytics.analytics-lead-report`."""
    return [f"{topic_prefix}{app_id(ctx)}.{consumer_name(ctx, declared)}" for declared in ctx.consumers]


def build(ctx: Context, settings: ServiceSettings) -> faust.App:
    platform = settings.platform
    app = ctx.application(settings)
    faust_app = consumer.make_app(app_id(ctx), platform)
    for declared in ctx.consumers:
        consumer.EventConsumer(
            faust_app, [events_topic(name, platform.topic_prefix) for name in declared.topics],
            registry_for(*declared.topics), declared.handler(settings, app),
            name=consumer_name(ctx, declared))
    for periodic in ctx.periodic:
        _schedule(faust_app, periodic, periodic.handler(settings, app),
                  float(getattr(settings, periodic.interval_setting)), f"{ctx.name}-{periodic.name}")
    return faust_app


log = logs.get(__name__)


def _schedule(faust_app: faust.App, periodic: Periodic, step: Callable[[], Any], interval: float,
              name: str) -> None:
    """Runs `step` in a thread every `interval` seconds while the worker runs; a failing step
    is logged and tried again at the next tick (its work is in the store)."""

    async def tick() -> None:
        try:
            await asyncio.to_thread(step)
        except Exception as exc:  # noqa: BLE001 - a store or peer hiccup must not end the worker
            log.warning("periodic.failed", periodic=name, error=repr(exc))

    tick.__name__ = tick.__qualname__ = f"periodic_{periodic.name}"
    faust_app.timer(interval, name=name)(tick)
