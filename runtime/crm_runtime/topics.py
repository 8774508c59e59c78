"""Topic names: crm.<context>.events.v1, dead letters in <topic>.dlq.

The contexts are the ones that declare a topic (crm_runtime.context), so a new context's
topic is created without an edit here.
"""

from __future__ import annotations


def _contexts() -> list[str]:
    from crm_runtime.context import publishing_topics

    return publishing_topics()


def events_topic(context: str, prefix: str = "") -> str:
    if context not in _contexts():
        raise ValueError(f"unknown context {context!r}; expected one of {_contexts()}")
    return f"{prefix}crm.{context}.events.v1"


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


def all_topics(prefix: str = "") -> list[str]:
    """Every topic the platform uses: each context's events and its dead letters."""
    names = [events_topic(context, prefix) for context in _contexts()]
    return names + [dead_letter_topic(name) for name in names]
