"""The lead report's counts (crm_analytics.lead_projection), against SQLite and PostgreSQL:
kept by each batch beside the lead rows, they always equal a count over the rows, whatever
the batches (one event at a time or many, duplicates, reassignments); and a store made
before the counts existed gets them from its rows."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from crm.leads.v1 import events_pb2 as leads_events
from crm_analytics import lead_projection
from crm_runtime.cloudevents import EventEnvelope
from crm_runtime.consumer import Delivery
from crm_runtime.readstore import make_engine

pytestmark = pytest.mark.postgres
TOPIC = "t.crm.leads.events.v1"
CHANNELS = [leads_events.CHANNEL_WEB, leads_events.CHANNEL_EMAIL, leads_events.CHANNEL_REFERRAL]


def history(leads: int, seed: int) -> list[Delivery]:
    """Each lead captured, then assigned zero to three times (reassignments, the same owner
    again), keyed by lead over two partitions; about one event in six delivered twice."""
    rng = random.Random(seed)
    now = Timestamp()
    now.FromDatetime(datetime.now(UTC))
    per_partition: dict[int, list[EventEnvelope]] = {0: [], 1: []}
    for n in range(leads):
        lead_id = f"lead-{seed}-{n}"
        events = [leads_events.LeadCaptured(lead_id=lead_id, channel=rng.choice(CHANNELS), captured_at=now)]
        events += [leads_events.LeadAssigned(lead_id=lead_id, owner_id=rng.choice(["ann", "bob", "cy"]),
                                             assigned_at=now) for _ in range(rng.randint(0, 3))]
        for version, message in enumerate(events, start=1):
            envelope = EventEnvelope(id=f"{lead_id}-{version}", source="crm/test", subject=lead_id,
                                     time=datetime.now(UTC), message=message)
            per_partition[n % 2].append(envelope)
            if rng.random() < 1 / 6:
                per_partition[n % 2].append(envelope)  # a relay re-send
    return [Delivery(envelope, TOPIC, partition, offset)
            for partition, envelopes in per_partition.items() for offset, envelope in enumerate(envelopes)]


def apply(projection, deliveries: list[Delivery], batch: int) -> None:
    for partition in (0, 1):
        mine = [d for d in deliveries if d.partition == partition]
        for start in range(0, len(mine), batch):
            projection.apply(TOPIC, partition, mine[start:start + batch])


def counted_from_rows(projection) -> lead_projection.LeadReport:
    """The report as a count over the lead rows (what the report computed before the counts)."""
    result = lead_projection.LeadReport()
    with projection.engine.connect() as conn:
        for dimension, item, total in conn.execute(lead_projection._counted_from_leads()):
            if not total:
                continue
            if dimension in ("captured", "assigned"):
                setattr(result, dimension, total)
            else:
                getattr(result, f"by_{dimension}")[item] = total
    return result


@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_the_counts_equal_a_count_over_the_rows_whatever_the_batches(any_platform, batch):
    projection = lead_projection.open_projection(any_platform)
    deliveries = history(60, seed=batch)
    apply(projection, deliveries, batch)
    report = lead_projection.read_report(projection)
    assert report == counted_from_rows(projection)
    assert report.captured == 60 and sum(report.by_channel.values()) == 60
    assert report.assigned == sum(report.by_owner.values()) and 0 < report.assigned < 60
    apply(projection, deliveries, 5)  # all of it again: nothing changes
    assert lead_projection.read_report(projection) == report


def test_a_store_made_before_the_counts_gets_them_from_its_rows(any_platform):
    projection = lead_projection.open_projection(any_platform)
    apply(projection, history(30, seed=3), 10)
    expected = lead_projection.read_report(projection)
    engine = make_engine(any_platform, "analytics")
    lead_projection.counts.drop(engine)  # as a store made by the release before the counts

    again = lead_projection.open_projection(any_platform)
    assert lead_projection.read_report(again) == expected
    apply(again, history(10, seed=4), 3)  # and the counts move on from there
    assert lead_projection.read_report(again) == counted_from_rows(again)
