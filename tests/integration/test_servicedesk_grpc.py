"""crm.servicedesk.v1.ServiceDeskService against an in-process grpc.aio server (the runtime's
build_server: auth interceptor, @rpc permissions, error table) on SQLite and PostgreSQL,
with a manual clock."""

from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from crm.servicedesk.v1 import servicedesk_pb2, servicedesk_pb2_grpc, types_pb2
from crm_runtime.business_time import ManualClock
from crm_servicedesk.adapters.grpc import registrations
from crm_servicedesk.application import ServiceDeskApplication
from tests.conftest import grpc_auth
from tests.grpc_harness import refused, serve_and_call

ADMIN = grpc_auth("admin", subject="root")
AGENT = grpc_auth("agent", subject="ann")
WORKFLOW = grpc_auth("service", subject="service:workflow")
SUPPORT_AGENT = grpc_auth("agent", subject="sam", groups=("support",))
FRIDAY_4PM = datetime(2026, 3, 6, 15, 0, tzinfo=UTC)


def ts(value: datetime) -> Timestamp:
    message = Timestamp()
    message.FromDatetime(value)
    return message


def hours(value: float) -> Duration:
    message = Duration()
    message.FromTimedelta(timedelta(hours=value))
    return message


def run(app: ServiceDeskApplication, address: str, scenario) -> None:
    serve_and_call(registrations(app), servicedesk_pb2_grpc.ServiceDeskServiceStub, address, scenario)


def berlin(**changes) -> servicedesk_pb2.Calendar:
    day = types_pb2.DayHours(intervals=[types_pb2.Interval(start="09:00", end="12:00"),
                                        types_pb2.Interval(start="13:00", end="17:00")])
    fields = {"calendar_id": "berlin", "time_zone": "Europe/Berlin",
              "hours": {name: day for name in ("mon", "tue", "wed", "thu", "fri")}, **changes}
    return servicedesk_pb2.Calendar(**fields)


def gold() -> servicedesk_pb2.SlaPolicy:
    P = types_pb2
    return servicedesk_pb2.SlaPolicy(
        policy_id="gold", calendar_id="berlin", account_tiers=["enterprise"], warn_at_percent=50,
        escalation_steps=[hours(0), hours(2)],
        targets=[P.PriorityTargets(priority=P.TICKET_PRIORITY_URGENT, first_response=hours(1), resolution=hours(4)),
                 P.PriorityTargets(priority=P.TICKET_PRIORITY_HIGH, first_response=hours(2), resolution=hours(8)),
                 P.PriorityTargets(priority=P.TICKET_PRIORITY_NORMAL, first_response=hours(4), resolution=hours(16)),
                 P.PriorityTargets(priority=P.TICKET_PRIORITY_LOW, first_response=hours(8), resolution=hours(40))])


def test_calendars_policies_and_the_ticket_life_over_grpc(any_platform, address):
    clock = ManualClock(FRIDAY_4PM)
    app = ServiceDeskApplication(any_platform, clock)
    P = types_pb2

    async def scenario(stub):
        bad = berlin(hours={"mon": types_pb2.DayHours(intervals=[types_pb2.Interval(start="12:00", end="09:00")])})
        detail = await refused(stub.PutCalendar(servicedesk_pb2.PutCalendarRequest(calendar=bad), metadata=ADMIN),
                               grpc.StatusCode.INVALID_ARGUMENT)
        assert detail.startswith("hours.mon[0]:")
        detail = await refused(stub.PutCalendar(servicedesk_pb2.PutCalendarRequest(
            calendar=berlin(holidays=["2026-13-01"])), metadata=ADMIN), grpc.StatusCode.INVALID_ARGUMENT)
        assert detail.startswith("holidays[0]:")
        await refused(stub.PutCalendar(servicedesk_pb2.PutCalendarRequest(calendar=berlin()), metadata=AGENT),
                      grpc.StatusCode.PERMISSION_DENIED)
        assert app.recorder.max_notification_id() in (None, 0)
        await stub.PutCalendar(servicedesk_pb2.PutCalendarRequest(calendar=berlin()), metadata=ADMIN)
        due = await stub.ComputeDue(servicedesk_pb2.ComputeDueRequest(
            calendar_id="berlin", start=ts(FRIDAY_4PM), duration=hours(4)), metadata=AGENT)
        assert due.due.ToDatetime(tzinfo=UTC) == datetime(2026, 3, 9, 11, tzinfo=UTC)
        span = await stub.ComputeElapsed(servicedesk_pb2.ComputeElapsedRequest(
            calendar_id="berlin", start=ts(FRIDAY_4PM), end=due.due), metadata=AGENT)
        assert span.duration.ToTimedelta() == timedelta(hours=4)
        policy = await stub.PutSlaPolicy(servicedesk_pb2.PutSlaPolicyRequest(policy=gold()), metadata=ADMIN)
        assert policy.warn_at_percent == 50 and len(policy.targets) == 4
        listed = await stub.ListSlaPolicies(servicedesk_pb2.ListSlaPoliciesRequest(), metadata=AGENT)
        assert [p.policy_id for p in listed.policies] == ["default", "gold"]

        created = await stub.CreateTicket(servicedesk_pb2.CreateTicketRequest(
            subject="Printer on fire", channel=P.TICKET_CHANNEL_EMAIL, priority=P.TICKET_PRIORITY_URGENT,
            requester_email="ada@example.com", account_tier="enterprise", group="support", request_id="m-1"),
            metadata=AGENT)
        ticket = created.ticket
        sla = ticket.state.sla
        assert created.created and sla.policy_id == "gold" and not sla.paused
        assert sla.first_response_due.ToDatetime(tzinfo=UTC) == datetime(2026, 3, 6, 16, tzinfo=UTC)
        assert sla.resolution.state == P.SLA_TARGET_STATE_RUNNING
        assert [d.ToTimedelta() for d in sla.escalation_steps] == [timedelta(0), timedelta(hours=2)]
        repeat = await stub.CreateTicket(servicedesk_pb2.CreateTicketRequest(
            subject="Printer on fire", channel=P.TICKET_CHANNEL_EMAIL, priority=P.TICKET_PRIORITY_URGENT,
            requester_email="ada@example.com", account_tier="enterprise", group="support", request_id="m-1"),
            metadata=AGENT)
        assert not repeat.created and repeat.ticket.state.ticket_id == ticket.state.ticket_id
        ticket_id = ticket.state.ticket_id
        await refused(stub.CreateTicket(servicedesk_pb2.CreateTicketRequest(
            subject="x", requester_email="a@example.com"), metadata=AGENT), grpc.StatusCode.INVALID_ARGUMENT)

        clock.advance(timedelta(minutes=30))
        pending = await stub.ChangeTicketStatus(servicedesk_pb2.ChangeTicketStatusRequest(
            ticket_id=ticket_id, status=P.TICKET_STATUS_PENDING), metadata=AGENT)
        assert pending.state.sla.paused and not pending.state.sla.HasField("resolution_due")
        clock.set(datetime(2026, 3, 9, 9, tzinfo=UTC))
        resumed = await stub.ChangeTicketStatus(servicedesk_pb2.ChangeTicketStatusRequest(
            ticket_id=ticket_id, status=P.TICKET_STATUS_OPEN, expected_version=2), metadata=AGENT)
        assert resumed.state.sla.resolution_due.ToDatetime(tzinfo=UTC) == datetime(2026, 3, 9, 13, 30, tzinfo=UTC)
        detail = await refused(stub.ChangeTicketStatus(servicedesk_pb2.ChangeTicketStatusRequest(
            ticket_id=ticket_id, status=P.TICKET_STATUS_CLOSED), metadata=AGENT), grpc.StatusCode.FAILED_PRECONDITION)
        assert "is open" in detail
        await refused(stub.ChangeTicketStatus(servicedesk_pb2.ChangeTicketStatusRequest(
            ticket_id=ticket_id, status=P.TICKET_STATUS_PENDING, expected_version=1), metadata=AGENT),
            grpc.StatusCode.ABORTED)

        answer = await stub.AddComment(servicedesk_pb2.AddCommentRequest(
            ticket_id=ticket_id, body="On it", public=True), metadata=AGENT)
        assert answer.first_response
        assert answer.ticket.state.sla.first_response.state == P.SLA_TARGET_STATE_MET

        # The workflow's commands: idempotent by key; a service account only.
        await refused(stub.AssignTicket(servicedesk_pb2.AssignTicketRequest(
            ticket_id=ticket_id, assignee_id="bob", idempotency_key="a1"), metadata=AGENT),
            grpc.StatusCode.PERMISSION_DENIED)
        first = await stub.AssignTicket(servicedesk_pb2.AssignTicketRequest(
            ticket_id=ticket_id, assignee_id="bob", idempotency_key="a1"), metadata=WORKFLOW)
        again = await stub.AssignTicket(servicedesk_pb2.AssignTicketRequest(
            ticket_id=ticket_id, assignee_id="carol", idempotency_key="a1"), metadata=WORKFLOW)
        assert first.state.assignee_id == again.state.assignee_id == "bob"
        assert first.state.version == again.state.version
        up = await stub.EscalateTicket(servicedesk_pb2.EscalateTicketRequest(
            ticket_id=ticket_id, level=1, idempotency_key="e1", reason="resolution"), metadata=WORKFLOW)
        repeat_up = await stub.EscalateTicket(servicedesk_pb2.EscalateTicketRequest(
            ticket_id=ticket_id, level=1, idempotency_key="e1"), metadata=WORKFLOW)
        assert up.state.escalation_level == repeat_up.state.escalation_level == 1
        assert up.state.version == repeat_up.state.version
        await refused(stub.EscalateTicket(servicedesk_pb2.EscalateTicketRequest(
            ticket_id=ticket_id, level=0, idempotency_key="e2"), metadata=WORKFLOW), grpc.StatusCode.INVALID_ARGUMENT)

        listed = await stub.ListTickets(servicedesk_pb2.ListTicketsRequest(assignee_id="bob"), metadata=AGENT)
        assert [t.state.ticket_id for t in listed.tickets] == [ticket_id]
        breached = await stub.ListTickets(servicedesk_pb2.ListTicketsRequest(breached=True), metadata=AGENT)
        assert list(breached.tickets) == []
        got = await stub.GetTicket(servicedesk_pb2.GetTicketRequest(ticket_id=ticket_id), metadata=AGENT)
        assert got.state.escalation_level == 1 and got.state.assignee_id == "bob"
        await refused(stub.GetTicket(servicedesk_pb2.GetTicketRequest(ticket_id="nope"), metadata=AGENT),
                      grpc.StatusCode.INVALID_ARGUMENT)

    run(app, address, scenario)


def test_agents_see_and_change_only_their_groups_assigned_and_own_tickets_over_grpc(any_platform, address):
    clock = ManualClock(FRIDAY_4PM)
    app = ServiceDeskApplication(any_platform, clock)
    P = types_pb2

    async def scenario(stub):
        async def opened(group: str, metadata=WORKFLOW) -> str:
            clock.advance(timedelta(minutes=1))
            answer = await stub.CreateTicket(servicedesk_pb2.CreateTicketRequest(
                subject="Help", channel=P.TICKET_CHANNEL_CHAT, requester_email="ada@example.com", group=group),
                metadata=metadata)
            return answer.ticket.state.ticket_id  # type: ignore[no-any-return]

        async def listed(metadata, **filters) -> list[str]:
            page = await stub.ListTickets(servicedesk_pb2.ListTicketsRequest(**filters), metadata=metadata)
            return [t.state.ticket_id for t in page.tickets]

        support, billing, handed = await opened("support"), await opened("billing"), await opened("billing")
        await stub.AssignTicket(servicedesk_pb2.AssignTicketRequest(
            ticket_id=handed, assignee_id="sam", idempotency_key="a1"), metadata=WORKFLOW)
        forwarded = await opened("billing", SUPPORT_AGENT)

        assert await listed(SUPPORT_AGENT) == [forwarded, handed, support]
        assert await listed(SUPPORT_AGENT, group="billing") == [forwarded, handed]
        assert await listed(ADMIN) == [forwarded, handed, billing, support] == await listed(WORKFLOW)
        assert await listed(grpc_auth("agent", subject="sam")) == [forwarded, handed]
        got = await stub.GetTicket(servicedesk_pb2.GetTicketRequest(ticket_id=handed), metadata=SUPPORT_AGENT)
        assert got.state.assignee_id == "sam"

        stored = app.recorder.max_notification_id()
        await refused(stub.GetTicket(servicedesk_pb2.GetTicketRequest(ticket_id=billing), metadata=SUPPORT_AGENT),
                      grpc.StatusCode.NOT_FOUND)
        await refused(stub.ChangeTicketStatus(servicedesk_pb2.ChangeTicketStatusRequest(
            ticket_id=billing, status=P.TICKET_STATUS_OPEN), metadata=SUPPORT_AGENT), grpc.StatusCode.NOT_FOUND)
        await refused(stub.ChangeTicketPriority(servicedesk_pb2.ChangeTicketPriorityRequest(
            ticket_id=billing, priority=P.TICKET_PRIORITY_LOW), metadata=SUPPORT_AGENT), grpc.StatusCode.NOT_FOUND)
        await refused(stub.AddComment(servicedesk_pb2.AddCommentRequest(
            ticket_id=billing, body="Mine", public=True), metadata=SUPPORT_AGENT), grpc.StatusCode.NOT_FOUND)
        await refused(stub.ReapplySla(servicedesk_pb2.ReapplySlaRequest(ticket_id=billing), metadata=SUPPORT_AGENT),
                      grpc.StatusCode.NOT_FOUND)
        assert app.recorder.max_notification_id() == stored
        moved = await stub.ChangeTicketStatus(servicedesk_pb2.ChangeTicketStatusRequest(
            ticket_id=support, status=P.TICKET_STATUS_OPEN), metadata=SUPPORT_AGENT)
        assert moved.state.status == P.TICKET_STATUS_OPEN

    run(app, address, scenario)


def test_assignments_and_escalations_in_one_call_apply_in_order_until_one_is_refused(any_platform, address):
    """AssignTickets and EscalateTickets: the workflow dispatcher's batched forms (crm.common.v1
    CommandResult): in order, one transaction, each with its own trace context."""
    from crm.common.v1 import commands_pb2
    from crm_runtime import tracing
    from crm_runtime.eventstore import trace_context

    clock = ManualClock(FRIDAY_4PM)
    app = ServiceDeskApplication(any_platform, clock)
    traces = [tracing.new_traceparent() for _ in range(4)]
    contexts = [commands_pb2.CommandContext(headers={"traceparent": tp}) for tp in traces]
    INVALID = grpc.StatusCode.INVALID_ARGUMENT.value[0]

    ids: list[str] = []

    async def scenario(stub):
        for n in range(3):
            answer = await stub.CreateTicket(servicedesk_pb2.CreateTicketRequest(
                subject=f"Help {n}", channel=types_pb2.TICKET_CHANNEL_CHAT, requester_email="ada@example.com"),
                metadata=ADMIN)
            ids.append(answer.ticket.state.ticket_id)
        assign = servicedesk_pb2.AssignTicketsRequest(requests=[
            servicedesk_pb2.AssignTicketRequest(ticket_id=ticket_id, assignee_id=agent, idempotency_key=key,
                                                expected_version=version)
            for ticket_id, agent, key, version in [(ids[0], "ann", "a0", 0), (ids[1], "bob", "a1", 0),
                                                   (ids[0], "bob", "a2", 0), (ids[2], "ann", "a3", 7),
                                                   (ids[2], "ann", "a4", 0)]],
            contexts=contexts)
        first = await stub.AssignTickets(assign, metadata=WORKFLOW)
        assert [r.code for r in first.results] == [0, 0, 0, grpc.StatusCode.ABORTED.value[0]]
        assert "not 7" in first.results[3].message
        again = await stub.AssignTickets(assign, metadata=WORKFLOW)  # a re-delivery changes nothing
        assert [r.code for r in again.results] == [r.code for r in first.results]

        escalate = servicedesk_pb2.EscalateTicketsRequest(requests=[
            servicedesk_pb2.EscalateTicketRequest(ticket_id=ids[1], level=1, idempotency_key="e1", reason="resolution"),
            servicedesk_pb2.EscalateTicketRequest(ticket_id=ids[1], level=2, idempotency_key="e2"),
            servicedesk_pb2.EscalateTicketRequest(ticket_id="not-a-ticket", level=1, idempotency_key="e3"),
            servicedesk_pb2.EscalateTicketRequest(ticket_id=ids[2], level=1, idempotency_key="e4")])
        escalated = await stub.EscalateTickets(escalate, metadata=WORKFLOW)
        assert [r.code for r in escalated.results] == [0, 0, INVALID]
        assert escalated.results[2].message.startswith("ticket_id:")

        await refused(stub.AssignTickets(assign, metadata=AGENT), grpc.StatusCode.PERMISSION_DENIED)
        too_many = servicedesk_pb2.EscalateTicketsRequest(requests=[escalate.requests[0]] * 501)
        detail = await refused(stub.EscalateTickets(too_many, metadata=WORKFLOW), grpc.StatusCode.INVALID_ARGUMENT)
        assert detail.startswith("requests:")

    run(app, address, scenario)
    tickets = [app.get_ticket(ticket_id) for ticket_id in ids]
    assert [(t.assignee_id, t.escalation_level) for t in tickets] == [("bob", 0), ("bob", 2), (None, 0)]
    # Each assignment's event carries the trace of its own decision.
    assigned = [event for ticket in tickets[:2] for event in app.repository.event_store.get(ticket.id)
                if type(event).__name__ == "Assigned"]
    assert [tracing.trace_id(trace_context(event)["traceparent"]) for event in assigned] == \
        [tracing.trace_id(tp) for tp in (traces[0], traces[2], traces[1])]
