"""crm.leads.v1.LeadsService against an in-process grpc.aio server (the runtime's
build_server: auth interceptor, @rpc permissions, error table) on SQLite and PostgreSQL:
the same semantics as HTTP, with gRPC's codes."""

import asyncio
from uuid import uuid4

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from crm.common.v1 import money_pb2
from crm.leads.v1 import events_pb2, leads_pb2, leads_pb2_grpc
from crm_leads.adapters.grpc import registrations
from crm_leads.application import AssignLead, LeadsApplication
from tests.conftest import grpc_auth
from tests.grpc_harness import refused, serve_and_call

ANN = grpc_auth("sales_rep", subject="ann")
BOB = grpc_auth("sales_rep", subject="bob")
BOSS = grpc_auth("sales_manager", subject="boss")


def run(app: LeadsApplication, address: str, scenario) -> None:
    serve_and_call(registrations(app), leads_pb2_grpc.LeadsServiceStub, address, scenario)


def at(text: str) -> Timestamp:
    stamp = Timestamp()
    stamp.FromJsonString(text)
    return stamp


def test_leads_over_grpc(any_platform, address):
    app = LeadsApplication(any_platform)

    async def scenario(stub):
        created = await stub.CreateCampaign(leads_pb2.CreateCampaignRequest(
            name="Webinar", channel=events_pb2.CHANNEL_WEB,
            budget=money_pb2.Money(amount="2500.0", currency_code="USD"),
            starts_on="2025-03-01", ends_on="2025-03-01", request_id="c-1"), metadata=BOSS)
        campaign = created.campaign
        assert created.created and campaign.budget == money_pb2.Money(amount="2500.00", currency_code="USD")
        assert (await stub.GetCampaign(leads_pb2.GetCampaignRequest(campaign_id=campaign.id), metadata=ANN)) == campaign
        listed = await stub.ListCampaigns(leads_pb2.ListCampaignsRequest(), metadata=ANN)
        assert [c.id for c in listed.campaigns] == [campaign.id]
        detail = await refused(stub.CreateCampaign(leads_pb2.CreateCampaignRequest(
            name="Bad", channel=events_pb2.CHANNEL_WEB, budget=money_pb2.Money(amount="1", currency_code="XAU"),
            starts_on="2025-03-01", ends_on="2025-03-02"), metadata=BOSS), grpc.StatusCode.INVALID_ARGUMENT)
        assert detail.startswith("budget.currency:")
        await refused(stub.CreateCampaign(leads_pb2.CreateCampaignRequest(
            name="Mine", channel=events_pb2.CHANNEL_WEB, budget=money_pb2.Money(amount="1", currency_code="EUR"),
            starts_on="2025-03-01", ends_on="2025-03-02"), metadata=ANN), grpc.StatusCode.PERMISSION_DENIED)

        lead = await stub.CaptureLead(leads_pb2.CaptureLeadRequest(
            name="Grace Hopper", email="grace@example.com", channel=events_pb2.CHANNEL_REFERRAL,
            title="Rear Admiral", company_size=1, country="us", campaign_id=campaign.id), metadata=BOSS)
        assert lead.status == leads_pb2.LEAD_STATUS_NEW and lead.country == "US"
        assert lead.HasField("company_size") and lead.company_size == 1 and lead.campaign_id == campaign.id
        detail = await refused(stub.CaptureLead(leads_pb2.CaptureLeadRequest(
            name="X", email="x@example.com", channel=events_pb2.CHANNEL_WEB, campaign_id=str(uuid4())),
            metadata=BOSS), grpc.StatusCode.INVALID_ARGUMENT)
        assert detail.startswith("campaign_id:")
        stored = app.recorder.max_notification_id()

        await asyncio.to_thread(app.assign_lead, AssignLead(lead_id=lead.id, owner_id="ann", idempotency_key="k"))
        await refused(stub.GetLead(leads_pb2.GetLeadRequest(lead_id=lead.id), metadata=BOB), grpc.StatusCode.NOT_FOUND)
        await refused(stub.ContactLead(leads_pb2.ContactLeadRequest(lead_id=lead.id), metadata=BOB),
                      grpc.StatusCode.NOT_FOUND)
        detail = await refused(stub.QualifyLead(leads_pb2.QualifyLeadRequest(lead_id=lead.id), metadata=ANN),
                               grpc.StatusCode.FAILED_PRECONDITION)
        assert "is new" in detail
        contacted = await stub.ContactLead(leads_pb2.ContactLeadRequest(lead_id=lead.id), metadata=ANN)
        assert contacted.status == leads_pb2.LEAD_STATUS_CONTACTED and contacted.version == 3
        await refused(stub.QualifyLead(leads_pb2.QualifyLeadRequest(lead_id=lead.id, expected_version=2),
                                       metadata=ANN), grpc.StatusCode.ABORTED)
        await refused(stub.DisqualifyLead(leads_pb2.DisqualifyLeadRequest(lead_id=lead.id), metadata=ANN),
                      grpc.StatusCode.INVALID_ARGUMENT)
        gone = await stub.DisqualifyLead(leads_pb2.DisqualifyLeadRequest(lead_id=lead.id, reason="No budget"),
                                         metadata=ANN)
        assert gone.status == leads_pb2.LEAD_STATUS_DISQUALIFIED and gone.disqualified_reason == "No budget"
        back = await stub.ReopenLead(leads_pb2.ReopenLeadRequest(lead_id=lead.id), metadata=ANN)
        assert back.status == leads_pb2.LEAD_STATUS_CONTACTED

        await refused(stub.UpdateLead(leads_pb2.UpdateLeadRequest(lead_id=lead.id, title="CEO"), metadata=ANN),
                      grpc.StatusCode.FAILED_PRECONDITION)
        await refused(stub.UpdateLead(leads_pb2.UpdateLeadRequest(lead_id=lead.id, expected_version=2, title="CEO"),
                                      metadata=ANN), grpc.StatusCode.ABORTED)
        detail = await refused(stub.UpdateLead(leads_pb2.UpdateLeadRequest(
            lead_id=lead.id, expected_version=back.version, follow_up_on="tomorrow"), metadata=ANN),
            grpc.StatusCode.INVALID_ARGUMENT)
        assert detail.startswith("follow_up_on:")
        updated = await stub.UpdateLead(leads_pb2.UpdateLeadRequest(
            lead_id=lead.id, expected_version=back.version, title="CEO", follow_up_on="2025-04-01",
            company_size=0), metadata=ANN)
        assert (updated.title, updated.follow_up_on, updated.HasField("company_size")) == ("CEO", "2025-04-01", False)

        activity = await stub.LogActivity(leads_pb2.LogActivityRequest(
            lead_id=lead.id, kind=events_pb2.ACTIVITY_KIND_MEETING, at=at("2025-03-31T09:00:00Z"),
            note="Demo"), metadata=ANN)
        assert activity.kind == events_pb2.ACTIVITY_KIND_MEETING and activity.logged_by == "ann"
        await refused(stub.LogActivity(leads_pb2.LogActivityRequest(lead_id=lead.id, at=at("2025-03-31T09:00:00Z")),
                                       metadata=ANN), grpc.StatusCode.INVALID_ARGUMENT)
        await refused(stub.LogActivity(leads_pb2.LogActivityRequest(
            lead_id=lead.id, kind=events_pb2.ACTIVITY_KIND_CALL), metadata=ANN), grpc.StatusCode.INVALID_ARGUMENT)
        activities = await stub.ListActivities(leads_pb2.ListActivitiesRequest(lead_id=lead.id), metadata=ANN)
        assert [a.id for a in activities.activities] == [activity.id]

        other = await stub.CaptureLead(leads_pb2.CaptureLeadRequest(
            name="Other", email="other@example.com", channel=events_pb2.CHANNEL_WEB), metadata=BOSS)
        mine = await stub.ListLeads(leads_pb2.ListLeadsRequest(), metadata=ANN)
        assert [item.id for item in mine.leads] == [lead.id]
        everyone = await stub.ListLeads(leads_pb2.ListLeadsRequest(page_size=1), metadata=BOSS)
        assert [item.id for item in everyone.leads] == [other.id] and everyone.next_page_token
        rest = await stub.ListLeads(leads_pb2.ListLeadsRequest(page_token=everyone.next_page_token), metadata=BOSS)
        assert [item.id for item in rest.leads] == [lead.id]
        filtered = await stub.ListLeads(leads_pb2.ListLeadsRequest(
            status=leads_pb2.LEAD_STATUS_CONTACTED, channel=events_pb2.CHANNEL_REFERRAL, q="hopper"), metadata=BOSS)
        assert [item.id for item in filtered.leads] == [lead.id]
        detail = await refused(stub.ListLeads(leads_pb2.ListLeadsRequest(page_token="nope"), metadata=BOSS),
                               grpc.StatusCode.INVALID_ARGUMENT)
        assert detail.startswith("page_token:")
        await refused(stub.ListLeads(leads_pb2.ListLeadsRequest(grade="tepid"), metadata=BOSS),
                      grpc.StatusCode.INVALID_ARGUMENT)
        assert stored < app.recorder.max_notification_id()

    run(app, address, scenario)


def test_assignments_in_one_call_apply_in_order_until_one_is_refused(any_platform, address):
    """AssignLeads: the workflow dispatcher's batched form of AssignLead (crm.common.v1
    CommandResult): in order, one transaction, each with its own trace context."""
    from crm.common.v1 import commands_pb2
    from crm_leads.application import CaptureLead
    from crm_runtime import tracing
    from crm_runtime.eventstore import trace_context

    app = LeadsApplication(any_platform)
    ids = [str(app.capture_lead(CaptureLead(name=f"Batch {n}", email=f"batch{n}@example.com", phone=None,
                                            company=None, channel="web"))[0].id) for n in range(3)]
    traces = [tracing.new_traceparent() for _ in range(5)]
    items = [(ids[0], "ann", "k0"), (ids[1], "bob", "k1"), (ids[0], "bob", "k2"), ("not-a-lead", "ann", "k3"),
             (ids[2], "ann", "k4")]
    request = leads_pb2.AssignLeadsRequest(
        requests=[leads_pb2.AssignLeadRequest(lead_id=lead_id, owner_id=owner, idempotency_key=key)
                  for lead_id, owner, key in items],
        contexts=[commands_pb2.CommandContext(headers={"traceparent": tp}) for tp in traces])
    service = grpc_auth("service", subject="service:workflow")

    async def scenario(stub):
        first = await stub.AssignLeads(request, metadata=service)
        assert [r.code for r in first.results] == [0, 0, 0, grpc.StatusCode.INVALID_ARGUMENT.value[0]]
        assert first.results[3].message.startswith("lead_id:")
        again = await stub.AssignLeads(request, metadata=service)  # a re-delivery changes nothing
        assert [r.code for r in again.results] == [r.code for r in first.results]
        await refused(stub.AssignLeads(request, metadata=ANN), grpc.StatusCode.PERMISSION_DENIED)
        too_many = leads_pb2.AssignLeadsRequest(requests=[request.requests[0]] * 501)
        detail = await refused(stub.AssignLeads(too_many, metadata=service), grpc.StatusCode.INVALID_ARGUMENT)
        assert detail.startswith("requests:")

    run(app, address, scenario)
    leads = [app.get_lead(lead_id) for lead_id in ids]
    assert [(lead.owner_id, lead.version) for lead in leads] == [("bob", 3), ("bob", 2), (None, 1)]
    # Each assignment's event carries the trace of its own decision.
    assigned = [event for lead_id in ids[:2] for event in app.repository.event_store.get(leads[ids.index(lead_id)].id)
                if type(event).__name__ == "Assigned"]
    assert [tracing.trace_id(trace_context(event)["traceparent"]) for event in assigned] == \
        [tracing.trace_id(tp) for tp in (traces[0], traces[2], traces[1])]

    # A context is checked as a call's metadata is: a bad traceparent starts a new trace, a
    # bad correlation id is replaced, and nothing else is stored.
    hostile = leads_pb2.AssignLeadsRequest(
        requests=[leads_pb2.AssignLeadRequest(lead_id=ids[2], owner_id="ann", idempotency_key="k5")],
        contexts=[commands_pb2.CommandContext(headers={"traceparent": "00-garbage", "correlation_id": "a\nb",
                                                       "x-evil": "1" * 1000})])

    async def hostile_scenario(stub):
        assert [r.code for r in (await stub.AssignLeads(hostile, metadata=service)).results] == [0]

    run(app, address, hostile_scenario)
    [event] = [e for e in app.repository.event_store.get(leads[2].id) if type(e).__name__ == "Assigned"]
    stored = trace_context(event)
    assert set(stored) == {"traceparent", "correlation_id"} and stored["correlation_id"] != "a\nb"
    assert tracing.trace_id(stored["traceparent"]) is not None


def test_a_peers_batch_is_applied_while_public_requests_fill_the_thread_pool(any_platform, address):
    """Commands already decided do not queue behind new work: with every thread of the
    event loop's shared pool taken by public requests (here, blocked ones), an
    AssignLeads batch from the workflow dispatcher is still applied at once."""
    import threading

    from crm_leads.application import CaptureLead

    app = LeadsApplication(any_platform)
    lead_id = str(app.capture_lead(CaptureLead(name="Queued", email="queued@example.com", phone=None,
                                               company=None, channel="web"))[0].id)
    service = grpc_auth("service", subject="service:workflow")
    request = leads_pb2.AssignLeadsRequest(
        requests=[leads_pb2.AssignLeadRequest(lead_id=lead_id, owner_id="ann", idempotency_key="q-1")])

    async def scenario(stub):
        gate = threading.Event()
        busy = [asyncio.ensure_future(asyncio.to_thread(gate.wait)) for _ in range(40)]  # more than the pool
        try:
            answer = await stub.AssignLeads(request, metadata=service, timeout=10)
            assert [r.code for r in answer.results] == [0]
        finally:
            gate.set()
            await asyncio.gather(*busy)

    run(app, address, scenario)
    assert app.get_lead(lead_id).owner_id == "ann"


def test_a_batch_of_assignments_reads_its_leads_in_one_query(any_platform):
    """apply_in_order's read-ahead: the batch's leads come from one find_many; only a lead
    it did not find is looked up on its own (and refused in its turn)."""
    from uuid import UUID, uuid4

    from crm_leads.application import AssignLead, CaptureLead
    from crm_runtime.errors import NotFound

    app = LeadsApplication(any_platform)
    ids = [str(app.capture_lead(CaptureLead(name=f"Ahead {n}", email=f"ahead{n}@example.com", phone=None,
                                            company=None, channel="web"))[0].id) for n in range(3)]
    missing = str(uuid4())
    reads: list[UUID] = []
    get = app.repository.get

    def counted(aggregate_id, *args, **kwargs):
        reads.append(aggregate_id)
        return get(aggregate_id, *args, **kwargs)

    app.repository.get = counted
    applied, refused = app.assign_leads([
        AssignLead(ids[0], "ann", "a"), AssignLead(ids[1], "bob", "b"), AssignLead(ids[0], "bob", "c"),
        AssignLead(missing, "ann", "d"), AssignLead(ids[2], "ann", "e")])
    assert applied == 3 and isinstance(refused, NotFound)
    assert reads == [UUID(missing)]
    del app.repository.get
    assert [(app.get_lead(i).owner_id, app.get_lead(i).version) for i in ids] == [("bob", 3), ("bob", 2), (None, 1)]
