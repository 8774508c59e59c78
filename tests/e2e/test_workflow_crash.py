"""kill -9 the workflow worker and its command dispatcher while they assign hundreds of
leads: after a restart every lead is assigned exactly once (decided means delivered), and
the round-robin rotation moved once per lead."""

from collections import Counter, defaultdict

import pytest

from crm.leads.v1 import events_pb2 as leads_events
from crm_leads.application import CaptureLead, LeadsApplication
from crm_runtime.cloudevents import EventRegistry
from crm_runtime.settings import PlatformSettings
from tests.kafka_helpers import OffsetWatcher, read_all
from tests.platform_harness import start_platform, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]
LEADS = 300
REPS = ["rep-a", "rep-b", "rep-c", "rep-d"]
REGISTRY = EventRegistry.from_modules(leads_events)


def test_each_lead_is_assigned_once_across_a_worker_and_dispatcher_crash(tmp_path, kafka_bootstrap, topic_prefix):
    topic = f"{topic_prefix}crm.leads.events.v1"
    store = LeadsApplication(PlatformSettings(data_dir=tmp_path / "stores"))
    ids = [str(store.capture_lead(CaptureLead(name=f"L{i}", email=f"l{i}@example.com", phone=None,
                                  company=None, channel="web"))[0].id) for i in range(LEADS)]
    platform = start_platform(tmp_path, kafka_bootstrap, topic_prefix,
                              ["leads", "leads-relay", "workflow-worker", "workflow-dispatcher"],
                              extra_env={"CRM_WORKFLOW_SALES_REPS": ",".join(REPS)},
                              deferred=("workflow-worker",))
    on_topic = OffsetWatcher(kafka_bootstrap, topic)
    try:
        wait_for(lambda: on_topic.total() == LEADS, what="the captured leads on the topic")
        platform.start("workflow-worker")
        progress = wait_for(lambda: (n := on_topic.total()) >= LEADS + 40 and n, interval=0.005,
                            what="the workflow assigning")
        assert progress < 2 * LEADS, "the worker finished before it could be killed mid-way"
        platform.kill("workflow-dispatcher")
        platform.kill("workflow-worker")
        platform.start("workflow-worker")
        platform.start("workflow-dispatcher")

        def all_assigned():
            assigned = defaultdict(list)
            for record in read_all(kafka_bootstrap, topic):
                envelope = REGISTRY.decode(record.headers, record.value)
                if isinstance(envelope.message, leads_events.LeadAssigned):
                    assigned[envelope.subject].append(envelope)
            return assigned if len(assigned) == LEADS else None

        assigned = wait_for(all_assigned, timeout=180, interval=1, what="every lead assigned")
        # Exactly one assignment per lead (a repeat of the same ce_id would be a relay re-send).
        for lead_id in ids:
            distinct = {envelope.id for envelope in assigned[lead_id]}
            assert len(distinct) == 1, f"lead {lead_id} assigned {len(distinct)} times"
        owners = Counter(envelopes[0].message.owner_id for envelopes in assigned.values())
        # 300 leads over 4 reps, one rotation turn per lead: exactly 75 each.
        assert owners == {rep: LEADS // len(REPS) for rep in REPS}
        assert all(store.get_lead(lead_id).version == 2 for lead_id in ids)
        platform.check_alive()
    finally:
        on_topic.close()
        platform.stop()
