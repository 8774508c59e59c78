"""Service-desk events reach crm.servicedesk.events.v1 on the real broker, in order, from a
SQLite and from a PostgreSQL store, read by a plain kafka-python consumer and decoded as a
downstream consumer (the workflow) would."""

import threading
from datetime import UTC, datetime, timedelta

import pytest

from crm.servicedesk.v1 import types_pb2
from crm_runtime import relay as relay_module
from crm_runtime.auth import Principal
from crm_runtime.business_time import ManualClock
from crm_runtime.events import registry_for
from crm_servicedesk.application import OpenTicket, ServiceDeskApplication
from crm_servicedesk.context import CONTEXT
from tests.kafka_helpers import at_least, ensure_topics, headers, read_all, read_topic

pytestmark = pytest.mark.kafka
AGENT = Principal("ann", frozenset({"agent"}))
ADMIN = Principal("root", frozenset({"admin"}))
FRIDAY_4PM = datetime(2026, 3, 6, 15, 0, tzinfo=UTC)


def test_ticket_events_are_on_the_topic_in_order_with_their_clocks(any_platform, kafka_bootstrap):
    ensure_topics(kafka_bootstrap, any_platform.topic_prefix)
    topic = f"{any_platform.topic_prefix}crm.servicedesk.events.v1"
    clock = ManualClock(FRIDAY_4PM)
    app = ServiceDeskApplication(any_platform, clock)
    app.define_calendar("berlin", {"time_zone": "Europe/Berlin", "hours": {
        day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}}, ADMIN)
    app.define_policy("gold", {"calendar_id": "berlin", "applies_to": {"account_tier": ["enterprise"]},
                               "targets": {p: {"first_response": "PT1H", "resolution": "PT4H"}
                                           for p in ("urgent", "high", "normal", "low")},
                               "warn_at_percent": 80, "escalation_steps": ["PT0S", "PT1H"]}, ADMIN)
    ticket, _ = app.open_ticket(OpenTicket("Printer", channel="email", priority="urgent",
                                           requester_email="ada@example.com", account_tier="enterprise",
                                           group="support", caller=AGENT))
    clock.advance(timedelta(minutes=10))
    app.assign_ticket(ticket.id, "bob", "route-1")
    app.assign_ticket(ticket.id, "bob", "route-1")  # repeated: nothing
    app.move_ticket(ticket.id, "pending", caller=AGENT)
    clock.advance(timedelta(minutes=20))
    app.move_ticket(ticket.id, "open", caller=AGENT)
    app.add_comment(ticket.id, "On it", True, caller=AGENT)
    app.change_priority(ticket.id, "high", caller=AGENT)
    app.escalate_ticket(ticket.id, 1, "esc-1", "resolution")
    app.escalate_ticket(ticket.id, 1, "esc-1", "resolution")  # repeated: nothing
    app.move_ticket(ticket.id, "solved", caller=AGENT)
    app.move_ticket(ticket.id, "reopened", caller=AGENT)
    app.move_ticket(ticket.id, "solved", caller=AGENT)
    app.move_ticket(ticket.id, "closed", caller=AGENT)

    relay = relay_module.for_context(app, CONTEXT.topic, CONTEXT.events.to_message, any_platform)
    thread = threading.Thread(target=relay.run, daemon=True)
    thread.start()
    try:
        read_topic(kafka_bootstrap, topic, at_least(16))  # a calendar, a policy, 12 ticket events, 2 surveys
    finally:
        relay.stop()
        thread.join(30)
        relay.close()

    registry = registry_for("servicedesk")
    records = [r for r in read_all(kafka_bootstrap, topic) if r.key.decode() == str(ticket.id)]
    types = [headers(r)["ce_type"].rsplit(".", 1)[1] for r in records]
    assert types == ["TicketOpened", "TicketAssigned", "TicketStatusChanged", "TicketStatusChanged",
                     "TicketCommented", "FirstResponded", "TicketPriorityChanged", "TicketEscalated",
                     "TicketSolved", "TicketReopened", "TicketSolved", "TicketClosed"]
    messages = [registry.decode(r.headers, r.value).message for r in records]
    assert [m.ticket.version for m in messages] == list(range(1, 13))
    opened, assigned, pending, resumed = messages[:4]
    sla = opened.ticket.sla
    assert (sla.policy_id, sla.calendar_id, sla.warn_at_percent) == ("gold", "berlin", 80)
    assert [step.ToTimedelta() for step in sla.escalation_steps] == [timedelta(0), timedelta(hours=1)]
    assert sla.first_response.state == types_pb2.SLA_TARGET_STATE_RUNNING
    assert sla.first_response.due.ToDatetime(tzinfo=UTC) == datetime(2026, 3, 6, 16, tzinfo=UTC)
    assert sla.first_response.warn_at.ToDatetime(tzinfo=UTC) == datetime(2026, 3, 6, 15, 48, tzinfo=UTC)
    assert [at.ToDatetime(tzinfo=UTC) for at in sla.resolution.escalate_at] == [
        datetime(2026, 3, 9, 11, tzinfo=UTC), datetime(2026, 3, 9, 12, tzinfo=UTC)]
    assert opened.ticket.group == "support" and opened.ticket.channel == types_pb2.TICKET_CHANNEL_EMAIL
    assert assigned.ticket.assignee_id == "bob" and assigned.idempotency_key == "route-1"
    assert pending.ticket.sla.paused and pending.ticket.sla.resolution.state == types_pb2.SLA_TARGET_STATE_PAUSED
    assert not pending.ticket.sla.resolution.HasField("due")
    # 20 minutes paused: resolution due 20 minutes later (all within Monday's hours).
    assert resumed.ticket.sla.resolution.due.ToDatetime(tzinfo=UTC) == datetime(2026, 3, 9, 11, 20, tzinfo=UTC)
    assert messages[5].ticket.sla.first_response.state == types_pb2.SLA_TARGET_STATE_MET
    assert messages[7].ticket.escalation_level == 1 and messages[7].previous_level == 0
    assert messages[8].ticket.sla.resolution.state == types_pb2.SLA_TARGET_STATE_MET
    assert messages[11].ticket.status == types_pb2.TICKET_STATUS_CLOSED
    others = {headers(r)["ce_type"] for r in read_all(kafka_bootstrap, topic)} - {
        f"crm.servicedesk.v1.{name}" for name in types}
    assert others == {"crm.servicedesk.v1.CalendarChanged", "crm.servicedesk.v1.SlaPolicyChanged",
                      "crm.servicedesk.v1.SurveyRequested"}  # one per solve


def test_article_and_survey_events_are_on_the_topic_in_order(any_platform, kafka_bootstrap):
    from crm_servicedesk.application import DraftArticle
    from crm_servicedesk.surveys import survey_id_for

    ensure_topics(kafka_bootstrap, any_platform.topic_prefix)
    topic = f"{any_platform.topic_prefix}crm.servicedesk.events.v1"
    clock = ManualClock(FRIDAY_4PM)
    app = ServiceDeskApplication(any_platform, clock)
    article, _ = app.draft_article(DraftArticle("Printer jams", "Pull the sheet.", "en-GB", ["hardware"],
                                                caller=AGENT))
    app.change_article(article.id, {"body": "Open tray two.\nPull the sheet."}, 1, AGENT)
    app.publish_article(article.id, caller=AGENT)
    app.archive_article(article.id, caller=AGENT)
    ticket, _ = app.open_ticket(OpenTicket("Printer", channel="email", requester_email="ada@example.com",
                                           caller=AGENT))
    app.move_ticket(ticket.id, "solved", caller=AGENT)
    app.move_ticket(ticket.id, "reopened", caller=AGENT)
    app.move_ticket(ticket.id, "solved", caller=AGENT)

    relay = relay_module.for_context(app, CONTEXT.topic, CONTEXT.events.to_message, any_platform)
    thread = threading.Thread(target=relay.run, daemon=True)
    thread.start()
    try:
        read_topic(kafka_bootstrap, topic, at_least(10))  # 4 article, 4 ticket and 2 survey events
        registry = registry_for("servicedesk")
        requests = sorted((registry.decode(r.headers, r.value).message for r in read_all(kafka_bootstrap, topic)
                           if headers(r)["ce_type"] == "crm.servicedesk.v1.SurveyRequested"),
                          key=lambda m: m.round)  # two keys: two partitions, perhaps
        assert [m.round for m in requests] == [1, 2]
        assert all(m.ticket_id == str(ticket.id) and m.requester_email == "ada@example.com" for m in requests)
        app.answer_survey(requests[1].token, 5, "Quick!")  # the token as the customer got it
        read_topic(kafka_bootstrap, topic, at_least(11))
    finally:
        relay.stop()
        thread.join(30)
        relay.close()

    records = read_all(kafka_bootstrap, topic)
    article_records = [r for r in records if r.key.decode() == str(article.id)]
    assert [headers(r)["ce_type"].rsplit(".", 1)[1] for r in article_records] == [
        "ArticleDrafted", "ArticleChanged", "ArticlePublished", "ArticleArchived"]
    drafted, changed, published, archived = [registry.decode(r.headers, r.value).message for r in article_records]
    assert (drafted.title, drafted.language, list(drafted.tags), drafted.drafted_by) == (
        "Printer jams", "en-GB", ["hardware"], "ann")
    assert changed.body == "Open tray two.\nPull the sheet." and changed.title == "Printer jams"
    assert [m.version for m in (drafted, changed, published, archived)] == [1, 2, 3, 4]
    assert all(headers(r)["ce_subject"] == str(article.id) for r in article_records)
    survey_key = str(survey_id_for(requests[1].token))
    survey_records = [r for r in records if r.key.decode() == survey_key]
    assert [headers(r)["ce_type"].rsplit(".", 1)[1] for r in survey_records] == ["SurveyRequested", "SurveyAnswered"]
    answered = registry.decode(survey_records[1].headers, survey_records[1].value).message
    assert (answered.ticket_id, answered.round, answered.rating, answered.comment) == (str(ticket.id), 2, 5, "Quick!")
    ticket_types = [headers(r)["ce_type"].rsplit(".", 1)[1] for r in records if r.key.decode() == str(ticket.id)]
    assert ticket_types == ["TicketOpened", "TicketSolved", "TicketReopened", "TicketSolved"]
