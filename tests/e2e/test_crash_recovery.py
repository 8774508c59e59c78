"""kill -9 the relay (and the analytics worker) while it publishes over a thousand events:
every event still reaches the topic, in order per aggregate, re-sends carry the same ce_id,
and the report counts every lead exactly once."""

from collections import defaultdict

import httpx
import pytest

from crm.leads.v1 import events_pb2 as leads_events
from crm_leads.application import AssignLead, CaptureLead, LeadsApplication
from crm_runtime.cloudevents import EventRegistry, stable_event_id
from crm_runtime.settings import PlatformSettings
from tests.conftest import bearer
from tests.kafka_helpers import OffsetWatcher, distinct_events, read_topic
from tests.platform_harness import start_platform, url, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]
LEADS = 1200
ASSIGNED = 300
REGISTRY = EventRegistry.from_modules(leads_events)


def test_nothing_is_lost_or_counted_twice_when_processes_are_killed(tmp_path, kafka_bootstrap, topic_prefix):
    topic = f"{topic_prefix}crm.leads.events.v1"
    # The store is filled first; the relay then has a backlog to publish in small batches.
    store = LeadsApplication(PlatformSettings(data_dir=tmp_path / "stores"))
    ids = []
    for i in range(LEADS):
        lead, _ = store.capture_lead(CaptureLead(name=f"Lead {i}", email=f"lead{i}@example.com", phone=None,
                                     company=None, channel=["web", "email", "event"][i % 3]))
        ids.append(str(lead.id))
    for lead_id in ids[:ASSIGNED]:
        store.assign_lead(AssignLead(lead_id, f"rep-{int(lead_id[:2], 16) % 4}", f"crash-{lead_id}"))
    total = LEADS + ASSIGNED

    platform = start_platform(tmp_path, kafka_bootstrap, topic_prefix,
                              ["analytics", "analytics-worker", "leads-relay"],
                              extra_env={"CRM_RELAY_BATCH_SIZE": "5"}, deferred=("leads-relay",))
    published = OffsetWatcher(kafka_bootstrap, topic)
    try:
        assert published.total() == 0
        platform.start("leads-relay")  # only now, with the watcher in place
        seen_at_kill = []
        for threshold in (150, 600, 1000):
            progress = wait_for(lambda t=threshold: (n := published.total()) >= t and n,
                                interval=0.005, what=f"{threshold} events published")
            platform.kill("leads-relay")
            seen_at_kill.append(progress)
            if threshold == 600:
                platform.kill("analytics-worker")
                platform.start("analytics-worker")
            platform.start("leads-relay")
        # Each kill hit a relay in the middle of the backlog, each after new progress.
        assert seen_at_kill == sorted(set(seen_at_kill)) and seen_at_kill[-1] < total, seen_at_kill

        # Re-sends are expected, so wait for every distinct event, not a record count.
        records = read_topic(kafka_bootstrap, topic, distinct_events(total), timeout=180)
        by_lead = defaultdict(list)
        payload_of_id = {}
        for record in records:
            envelope = REGISTRY.decode(record.headers, record.value)
            by_lead[envelope.subject].append(envelope.id)
            # A repeat is the same event: same ce_id, same bytes.
            assert payload_of_id.setdefault(envelope.id, record.value) == record.value
        assert len(payload_of_id) == total  # every event is on the topic
        for i, lead_id in enumerate(ids):
            versions = 2 if i < ASSIGNED else 1
            expected = [stable_event_id(lead_id, v) for v in range(1, versions + 1)]
            first_seen = list(dict.fromkeys(by_lead[lead_id]))
            assert first_seen == expected, f"lead {lead_id} out of order: {by_lead[lead_id]}"

        reports = url("analytics") + "/v1/reports/leads"
        report = wait_for(lambda: (r := httpx.get(reports, headers=bearer("analyst")).json())
                          ["captured"] == LEADS and r["assigned"] == ASSIGNED and r,
                          timeout=180, what="report counts every lead")
        assert sum(report["by_channel"].values()) == LEADS
        assert sum(report["by_owner"].values()) == ASSIGNED
        platform.check_alive()
    finally:
        published.close()
        platform.stop()
