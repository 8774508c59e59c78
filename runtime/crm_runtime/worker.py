"""A context's worker: one faust app running every consumer the context declares, each an
agent over its topics with one actor per partition (crm_runtime.consumer)."""

from __future__ import annotations

import faust

from crm_runtime import consumer
from crm_runtime.context import Context
from crm_runtime.events import registry_for
from crm_runtime.settings import ServiceSettings
from crm_runtime.topics import events_topic


def app_id(ctx: Context) -> str:
    """The faust app id of the context's worker, which is also its consumer group."""
    return f"crm-{ctx.name}"


def build(ctx: Context, settings: ServiceSettings) -> faust.App:
    platform = settings.platform
    app = ctx.application(settings)
    faust_app = consumer.make_app(app_id(ctx), platform)
    for declared in ctx.consumers:
        consumer.EventConsumer(
            faust_app, [events_topic(name, platform.topic_prefix) for name in declared.topics],
            registry_for(*declared.topics), declared.handler(settings, app),
            name=f"{ctx.name}-{declared.name}")
    return faust_app
