"""Dead letters back into their stream, once the cause is fixed.

`python -m crm_runtime.dead_letters crm.leads.events.v1.dlq` re-publishes every record of a
dead-letter topic to the topic it came from (its `dlq_topic` header), without the `dlq_*`
headers, and commits its progress in the consumer group `crm-dead-letter-replay`, so a
second run replays only what arrived since. Consumers skip events they already applied,
so replaying one that did get through later changes nothing. With `--reason`, records
whose reason does not match are passed over for good in that group (use `--group` to read
the topic again from the start).
"""

from __future__ import annotations

import argparse

from kafka import KafkaConsumer

from crm_runtime import logs
from crm_runtime.producers import make_producer
from crm_runtime.settings import PlatformSettings

log = logs.get(__name__)
GROUP = "crm-dead-letter-replay"


def replay(bootstrap: str, dead_letter_topic: str, *, group: str = GROUP, idle_ms: int = 3000,
           only_reason: str | None = None) -> int:
    """Re-publishes the dead letters not replayed before; returns how many it sent."""
    consumer = KafkaConsumer(dead_letter_topic, bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             consumer_timeout_ms=idle_ms, client_id="crm-dlq-replay")
    producer = make_producer(bootstrap, client_id="crm-dlq-replay")
    sent = skipped = 0
    try:
        for record in consumer:
            headers = {name: value for name, value in record.headers}
            source = headers.get("dlq_topic", b"").decode()
            reason = headers.get("dlq_reason", b"").decode(errors="replace")
            if not source or (only_reason and only_reason not in reason):
                skipped += 1
                continue
            kept = [(name, value) for name, value in record.headers if not name.startswith("dlq_")]
            producer.send(source, key=record.key, value=record.value, headers=kept).get(timeout=30)
            sent += 1
        producer.flush()
        consumer.commit()  # only after everything read was re-published
    finally:
        producer.close()
        consumer.close()
    log.info("dead_letters.replayed", topic=dead_letter_topic, sent=sent, skipped=skipped)
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m crm_runtime.dead_letters")
    parser.add_argument("topic", help="the dead-letter topic, e.g. crm.leads.events.v1.dlq")
    parser.add_argument("--reason", help="replay only records whose dlq_reason contains this text")
    parser.add_argument("--group", default=GROUP, help=f"consumer group keeping the progress (default {GROUP})")
    args = parser.parse_args()
    settings = PlatformSettings()
    logs.configure("dead-letters", settings.log_level, settings.log_json)
    sent = replay(settings.kafka_bootstrap, args.topic, group=args.group, only_reason=args.reason)
    print(f"replayed {sent} record(s) from {args.topic}")


if __name__ == "__main__":
    main()
