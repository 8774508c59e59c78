"""Projection, the read-model batch handler, against SQLite and PostgreSQL: one transaction
for effects, event ids and position; duplicates skipped; positions per partition that never
move back; a rebuild by reset."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, update

from crm.leads.v1 import events_pb2 as leads_events
from crm_runtime.cloudevents import EventEnvelope
from crm_runtime.consumer import Delivery
from crm_runtime.readstore import Projection, make_engine
from tests.queueing import Gate

pytestmark = pytest.mark.postgres
TOPIC = "t.crm.leads.events.v1"


def delivery(offset: int, subject: str = "lead-1", event_id: str | None = None, partition: int = 0) -> Delivery:
    envelope = EventEnvelope(id=event_id or f"e-{partition}-{offset}", source="crm/test", subject=subject,
                             time=datetime.now(UTC), message=leads_events.LeadCaptured(lead_id=subject))
    return Delivery(envelope, TOPIC, partition, offset)


class Counts:
    """A read model counting events per subject, per event or per batch."""

    def __init__(self, platform, name="counts", set_based=False, fail_on=None):
        self.metadata = MetaData()
        self.table = Table(f"{name}_subjects", self.metadata, Column("subject", String(64), primary_key=True),
                           Column("n", Integer, nullable=False))
        self.fail_on = fail_on
        self.batches: list[list[str]] = []
        engine = make_engine(platform, "projection_test")
        if set_based:
            self.projection = Projection(engine, name, metadata=self.metadata, apply_events=self.count_all)
        else:
            self.projection = Projection(engine, name, self.count, self.metadata)

    def count(self, conn, envelope):
        if envelope.id == self.fail_on:
            raise ValueError("bug")
        t = self.table
        row = conn.execute(select(t.c.n).where(t.c.subject == envelope.subject)).first()
        if row is None:
            conn.execute(insert(t).values(subject=envelope.subject, n=1))
        else:
            conn.execute(update(t).where(t.c.subject == envelope.subject).values(n=row[0] + 1))

    def count_all(self, conn, envelopes):
        self.batches.append([e.id for e in envelopes])
        for envelope in envelopes:
            self.count(conn, envelope)

    def rows(self):
        with self.projection.engine.connect() as conn:
            return dict(conn.execute(select(self.table)).all())


@pytest.mark.parametrize("set_based", [False, True], ids=["per-event", "set-based"])
def test_effects_ids_and_position_in_one_transaction(any_platform, set_based):
    counts = Counts(any_platform, set_based=set_based)
    p = counts.projection
    p.apply(TOPIC, 0, [delivery(0, "a"), delivery(1, "b"), delivery(2, "a"), delivery(3, "a", "e-0-2")])
    assert counts.rows() == {"a": 2, "b": 1} and p.positions() == {(TOPIC, 0): 3}
    if set_based:
        assert counts.batches == [["e-0-0", "e-0-1", "e-0-2"]]  # each new event once, in order
    # A redelivery, overlapping new events, and another partition.
    p.apply(TOPIC, 0, [delivery(2, "a"), delivery(3, "a", "e-0-2"), delivery(4, "b")])
    p.apply(TOPIC, 1, [delivery(0, "c", partition=1)])
    assert counts.rows() == {"a": 2, "b": 2, "c": 1}
    assert p.positions() == {(TOPIC, 0): 4, (TOPIC, 1): 0}


def test_a_failing_effect_leaves_nothing_behind(any_platform):
    counts = Counts(any_platform, fail_on="e-0-1")
    with pytest.raises(ValueError):
        counts.projection.apply(TOPIC, 0, [delivery(0, "a"), delivery(1, "b")])
    assert counts.rows() == {} and counts.projection.positions() == {}
    counts.projection.apply(TOPIC, 0, [delivery(0, "a")])
    assert counts.rows() == {"a": 1} and counts.projection.positions() == {(TOPIC, 0): 0}


def test_positions_never_move_back(any_platform):
    p = Counts(any_platform).projection
    p.advance(TOPIC, 2, 10)
    p.advance(TOPIC, 2, 7)  # a slower twin committing late
    p.apply(TOPIC, 2, [delivery(5, partition=2)])
    assert p.positions() == {(TOPIC, 2): 10}
    p.advance(TOPIC, 2, 11)
    assert p.positions() == {(TOPIC, 2): 11}


def test_projections_keep_their_own_records(any_platform):
    first, second = Counts(any_platform, "first"), Counts(any_platform, "second")
    first.projection.apply(TOPIC, 0, [delivery(0, "a")])
    second.projection.apply(TOPIC, 0, [delivery(0, "a")])  # the same event: new to the second
    assert first.rows() == second.rows() == {"a": 1}
    assert first.projection.positions() == second.projection.positions() == {(TOPIC, 0): 0}


def test_reset_empties_the_read_model_its_ids_and_its_positions(any_platform):
    counts = Counts(any_platform)
    counts.projection.apply(TOPIC, 0, [delivery(0, "a")])
    counts.projection.reset()
    assert counts.rows() == {} and counts.projection.positions() == {}
    counts.projection.apply(TOPIC, 0, [delivery(0, "a")])  # replayed: applied again
    assert counts.rows() == {"a": 1}


def test_twin_consumers_applying_the_same_batch_apply_it_once(any_platform):
    """Two consumers with the same event at once (a rebalance overlap): the second's record
    of the event id waits for the first's transaction, then finds the id recorded, so the
    second applies nothing, and fails nothing."""
    if any_platform.store == "sqlite":
        pytest.skip("SQLite has one writer at a time: the twins cannot overlap")
    one, two = Counts(any_platform), Counts(any_platform)
    one_written, two_applied, release = threading.Event(), threading.Event(), threading.Event()

    def slow(conn, envelope):
        Counts.count(one, conn, envelope)
        one_written.set()
        release.wait(10)  # effect written, transaction open

    def flagged(conn, envelope):
        two_applied.set()
        Counts.count(two, conn, envelope)

    one.projection.apply_event, two.projection.apply_event = slow, flagged
    errors = []

    def apply(counts):
        try:
            counts.projection.apply(TOPIC, 0, [delivery(0, "a")])
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    first = threading.Thread(target=apply, args=(one,))
    first.start()
    assert one_written.wait(10)
    second = threading.Thread(target=apply, args=(two,))
    second.start()
    second.join(0.5)
    assert second.is_alive()  # waiting on the first's uncommitted event id
    release.set()
    first.join(10)
    second.join(10)
    assert errors == [] and not two_applied.is_set()
    assert one.rows() == {"a": 1} and two.projection.positions() == {(TOPIC, 0): 0}


def test_partitions_batches_applied_together_share_a_transaction_but_not_a_fault(any_platform):
    """Batches of several partitions that reach the projection while another is applied
    are applied next in one transaction; when one of them fails, the others are applied
    on their own and only its caller sees the error."""
    counts = Counts(any_platform, set_based=True, fail_on="e-2-2")
    connections: dict[int, object] = {}  # partition -> the connection of its transaction
    gate = Gate()
    count_all = counts.count_all

    def applying(conn, envelopes):
        if envelopes[0].subject == "blocker":
            gate.hold()  # the batches below queue meanwhile
        for envelope in envelopes:
            connections.setdefault(int(envelope.id.split("-")[1]), conn)
        count_all(conn, envelopes)

    counts.projection.apply_events = applying
    errors: dict[int, BaseException] = {}

    def apply(partition, *deliveries):
        def call():
            try:
                counts.projection.apply(TOPIC, partition, list(deliveries))
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                errors[partition] = exc
        return call

    gate.run(apply(9, delivery(0, "blocker", partition=9)),
             *(apply(p, delivery(0, f"s{p}", partition=p), delivery(1, f"s{p}", partition=p)) for p in (0, 1)))
    assert errors == {} and connections[0] is connections[1] and connections[1] is not connections[9]
    assert counts.rows() == {"blocker": 1, "s0": 2, "s1": 2}
    assert counts.projection.positions() == {(TOPIC, 9): 0, (TOPIC, 0): 1, (TOPIC, 1): 1}

    # A faulty event in one partition's batch: the other partition's batch still commits.
    gate.run(apply(9, delivery(1, "blocker", partition=9)),
             *(apply(p, delivery(2, f"s{p}", partition=p)) for p in (1, 2)))
    assert list(errors) == [2] and isinstance(errors[2], ValueError)
    assert counts.rows() == {"blocker": 2, "s0": 2, "s1": 3}
    assert counts.projection.positions() == {(TOPIC, 9): 1, (TOPIC, 0): 1, (TOPIC, 1): 2}
