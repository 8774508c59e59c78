"""Every process stops on SIGTERM within 10 s, even while a peer it needs is unreachable,
and what was in flight is seen again after the restart: decided means delivered, once."""

import signal
import time
from pathlib import Path

import pytest

from crm_leads.application import CaptureLead, LeadsApplication
from crm_runtime.settings import PlatformSettings
from tests.platform_harness import log_text, start_platform, stop_within, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


def test_workflow_stops_promptly_while_leads_is_frozen_then_assigns_once(tmp_path, kafka_bootstrap,
                                                                          topic_prefix):
    platform = start_platform(tmp_path, kafka_bootstrap, topic_prefix,
                              ["leads", "leads-relay", "workflow-worker", "workflow-dispatcher"])
    leads_proc = platform.procs["leads"]
    store = LeadsApplication(PlatformSettings(data_dir=Path(platform.env["CRM_DATA_DIR"])))
    try:
        leads_proc.send_signal(signal.SIGSTOP)  # alive but silent: calls to it hang
        lead, _ = store.capture_lead(CaptureLead(name="Waiting Lead", email="w@example.com",
                                                 phone=None, company=None, channel="web"))
        # The worker decided; the dispatcher's AssignLead now waits on the frozen service.
        wait_for(lambda: str(lead.id) in log_text(platform, "workflow-worker"), what="decision")
        wait_for(lambda: "dispatcher.retrying" in log_text(platform, "workflow-dispatcher"),
                 what="the dispatcher waiting on the frozen leads service")
        stop_within(platform, "workflow-dispatcher")
        stop_within(platform, "workflow-worker")
        stop_within(platform, "leads-relay")
        assert store.get_lead(lead.id).owner_id is None
        platform.start("workflow-worker")
        platform.start("workflow-dispatcher")
        leads_proc.send_signal(signal.SIGCONT)
        owner = wait_for(lambda: store.get_lead(lead.id).owner_id, what="assignment after the thaw")
        assert owner
        time.sleep(2)  # anything re-sent would have landed by now
        assert store.get_lead(lead.id).version == 2, "assigned more than once"
    finally:
        if leads_proc.poll() is None:
            leads_proc.send_signal(signal.SIGCONT)
        platform.stop()
