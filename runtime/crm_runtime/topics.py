"""Topic names: crm.<context>.events.v1, dead letters in <topic>.dlq."""

from __future__ import annotations

CONTEXTS = ("leads", "sales", "servicedesk", "workflow")


def events_topic(context: str, prefix: str = "") -> str:
    if context not in CONTEXTS:
        raise ValueError(f"unknown context {context!r}; expected one of {CONTEXTS}")
    return f"{prefix}crm.{context}.events.v1"


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


def all_topics(prefix: str = "") -> list[str]:
    """Every topic the platform uses: each context's events and its dead letters."""
    names = [events_topic(context, prefix) for context in CONTEXTS]
    return names + [dead_letter_topic(name) for name in names]
