"""The lead report, dropped and rebuilt by replaying the topic, gives the same answer."""

import signal

import httpx
import pytest

from crm_analytics.rebuild import rebuild
from crm_analytics.settings import AnalyticsSettings
from crm_leads.application import AssignLead, CaptureLead, LeadsApplication
from crm_runtime.settings import PlatformSettings
from tests.conftest import bearer
from tests.platform_harness import start_platform, url, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


def report():
    return httpx.get(url("analytics") + "/v1/reports/leads", headers=bearer("analyst")).json()


def test_rebuilding_the_report_by_replay_gives_the_same_answer(tmp_path, kafka_bootstrap, topic_prefix):
    store = LeadsApplication(PlatformSettings(data_dir=tmp_path / "stores"))
    for i in range(40):
        lead, _ = store.capture_lead(CaptureLead(name=f"R{i}", email=f"r{i}@example.com", phone=None,
                                     company=None, channel=["web", "email", "partner", "event"][i % 4]))
        if i % 3 == 0:
            store.assign_lead(AssignLead(lead.id, f"rep-{i % 2}", f"k{i}"))
    platform = start_platform(tmp_path, kafka_bootstrap, topic_prefix,
                              ["analytics", "analytics-worker", "leads-relay"])
    try:
        before = wait_for(lambda: (r := report())["captured"] == 40 and r["assigned"] == 14 and r,
                          what="the report before the rebuild")
        settings = AnalyticsSettings(platform=PlatformSettings(
            kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix, data_dir=tmp_path / "stores"))
        with pytest.raises(RuntimeError, match="running members"):
            rebuild(settings)  # refused while the worker runs: nothing is dropped
        assert report() == before
        platform.kill("analytics-worker", signal.SIGTERM)
        rebuild(settings)
        assert report() == {"captured": 0, "assigned": 0, "by_channel": {}, "by_owner": {}}
        platform.start("analytics-worker")
        after = wait_for(lambda: (r := report()) == before and r, what="the rebuilt report")
        assert after == before
    finally:
        platform.stop()
