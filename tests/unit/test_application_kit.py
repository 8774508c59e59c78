"""The application kit every context builds on, on eventsourcing's in-memory store."""

from uuid import uuid4

import pytest

from crm_leads.application import AssignLead, CaptureLead, LeadsApplication
from crm_leads.domain import Lead
from crm_runtime.errors import Conflict, InvalidField, NotFound
from crm_runtime.eventstore import caller_scoped, check_version
from crm_runtime.settings import PlatformSettings
from crm_workflow.application import WorkflowApplication

MEMORY = PlatformSettings(store="memory")
ADA = CaptureLead(name="Ada", email="ada@example.com", phone=None, company=None, channel="web")


@pytest.fixture
def leads():
    return LeadsApplication(MEMORY)


def test_get_names_what_is_missing_and_refuses_malformed_ids(leads):
    with pytest.raises(NotFound, match="lead 00000000-0000-0000-0000-000000000000 does not exist"):
        leads.get(Lead, "00000000-0000-0000-0000-000000000000", "lead")
    with pytest.raises(InvalidField) as caught:
        leads.get(Lead, "nope", "lead")
    assert caught.value.field == "lead_id"
    assert leads.find(Lead, uuid4()) is None


def test_create_once_is_idempotent_per_caller_and_refuses_another_request(leads):
    keyed = CaptureLead(**{**ADA.__dict__, "request_key": "k1", "caller": "alice"})
    first, created = leads.capture_lead(keyed)
    again, created_again = leads.capture_lead(keyed)
    assert created and not created_again and first.id == again.id
    other_caller, created_for_bob = leads.capture_lead(CaptureLead(**{**keyed.__dict__, "caller": "bob"}))
    assert created_for_bob and other_caller.id != first.id
    with pytest.raises(Conflict, match="Idempotency-Key"):
        leads.capture_lead(CaptureLead(**{**keyed.__dict__, "name": "Someone Else"}))
    assert caller_scoped("alice", "k1") != caller_scoped("bob", "k1")


def test_a_stale_version_and_a_lost_race_are_conflicts(leads):
    lead, _ = leads.capture_lead(ADA)
    with pytest.raises(Conflict, match="version 1, not 7"):
        check_version(lead, 7)
    check_version(lead, None)
    stale = leads.get_lead(lead.id)
    leads.assign_lead(AssignLead(str(lead.id), "rep-1", "k1"))
    stale.assign("rep-2", "k2")
    with pytest.raises(Conflict, match="changed concurrently"):
        leads.save_changes(stale)
    assert leads.get_lead(lead.id).owner_id == "rep-1"


def test_a_batch_of_decisions_advances_the_rotation_once_per_new_lead():
    workflow = WorkflowApplication(MEMORY, ["rep-a", "rep-b"])
    first = workflow.decide_lead_owners([("l1", "e1"), ("l2", "e2"), ("l1", "e1-again")])
    assert [a.owner_id for a in first] == ["rep-a", "rep-b"]
    replay = workflow.decide_lead_owners([("l2", "e2"), ("l3", "e3")])
    assert [(a.subject_id, a.owner_id) for a in replay] == [("l2", "rep-b"), ("l3", "rep-a")]
    assert workflow.get_assignment("l1").idempotency_key == "workflow/assignment/e1"


def test_find_many_reads_what_find_reads(leads):
    """On the in-memory store too; a class with snapshots (the rotation) is read with `find`."""
    from crm_workflow.assignment import Rotation

    one, _ = leads.capture_lead(ADA)
    two, _ = leads.capture_lead(CaptureLead(name="Bo", email="bo@example.com", phone=None, company=None,
                                            channel="web"))
    found = leads.find_many(Lead, [two.id, uuid4(), one.id])
    assert {key: lead.email for key, lead in found.items()} == {one.id: "ada@example.com", two.id: "bo@example.com"}

    workflow = WorkflowApplication(MEMORY, ["rep-a"])
    workflow.decide_lead_owners([("l1", "e1")])
    rotation_id = Rotation.id_for("sales-reps")
    rotation = workflow.find(Rotation, rotation_id)
    assert workflow.find_many(Rotation, [rotation_id])[rotation_id].version == rotation.version
