"""A relay stops on SIGTERM within 10 s while its broker is away, frozen or dead, with
events waiting to be sent; after the restarts every event is on the topic."""

import signal
import time
from pathlib import Path

import pytest

from crm_devstack.__main__ import CACHE
from crm_devstack.kafka_broker import Broker
from crm_leads.application import CaptureLead, LeadsApplication
from crm_runtime.settings import PlatformSettings
from tests.kafka_helpers import distinct_events, read_all, read_topic
from tests.platform_harness import start_platform, stop_within

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

PORT = 31_292  # a broker of its own (controller on the next port), away from the others


def capture(store: LeadsApplication, first: int, count: int) -> None:
    for i in range(first, first + count):
        store.capture_lead(CaptureLead(name=f"Waiting {i}", email=f"waiting{i}@example.com",
                                       phone=None, company=None, channel="web"))


def test_relay_stops_promptly_while_its_broker_is_away_and_publishes_everything_after(tmp_path, topic_prefix):
    broker = Broker(cache_dir=CACHE, data_dir=tmp_path / "kafka", port=PORT, controller_port=PORT + 1)
    broker.start()
    platform = None
    try:
        platform = start_platform(tmp_path, broker.bootstrap, topic_prefix, ["leads-relay"])
        topic = f"{topic_prefix}crm.leads.events.v1"
        store = LeadsApplication(PlatformSettings(data_dir=Path(platform.env["CRM_DATA_DIR"])))
        capture(store, 0, 5)
        read_topic(broker.bootstrap, topic, distinct_events(5))  # connected, publishing

        # Frozen: connections stay open and nothing answers. Events wait to be sent.
        assert broker.process is not None
        broker.process.send_signal(signal.SIGSTOP)
        try:
            capture(store, 5, 20)
            time.sleep(3)  # the relay has read them and handed them to its producer
            stop_within(platform, "leads-relay")
            platform.start("leads-relay")
            capture(store, 25, 5)
            time.sleep(3)
        finally:
            broker.process.send_signal(signal.SIGCONT)
        read_topic(broker.bootstrap, topic, distinct_events(30))

        # Dead: nothing listens. A relay starting meanwhile and one already running both stop.
        broker.process.kill()
        broker.process.wait(30)
        capture(store, 30, 10)
        time.sleep(3)
        stop_within(platform, "leads-relay")
        platform.start("leads-relay")
        time.sleep(3)
        stop_within(platform, "leads-relay")
        broker.start()
        platform.start("leads-relay")
        read_topic(broker.bootstrap, topic, distinct_events(40))
        # A batch sent but not acknowledged before a stop is sent again by the next run (the
        # producer is idempotent only within one run), so an event may land twice: consumers
        # drop the copy by its ce_id. None may be missing, nor any other event appear.
        ids = {dict(record.headers)["ce_id"] for record in read_all(broker.bootstrap, topic)}
        assert len(ids) == 40
    finally:
        if broker.process is not None and broker.process.poll() is None:
            broker.process.send_signal(signal.SIGCONT)
        if platform is not None:
            platform.stop()
        broker.stop()
