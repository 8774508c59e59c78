"""De-duplication at the door, a lead's duplicates, merge and conversion, over HTTP and over
gRPC (in-process grpc.aio server with the runtime's interceptor), on SQLite and PostgreSQL."""

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from uuid import uuid4

import grpc
import pytest
from fastapi.testclient import TestClient

from crm.leads.v1 import events_pb2, leads_pb2, leads_pb2_grpc
from crm_leads.adapters.grpc import registrations
from crm_leads.adapters.http import routers
from crm_leads.adapters.messages import EVENTS
from crm_leads.application import AssignLead, CaptureLead, LeadsApplication, MoveLead
from crm_leads.domain import conversion_ids
from crm_leads.importer import ImportLeads, import_leads
from crm_runtime import http, tracing
from crm_runtime.errors import Conflict
from crm_runtime.eventstore import trace_context
from tests.conftest import TOKENS, bearer, grpc_auth
from tests.grpc_harness import refused, serve_and_call

PROBLEM = "application/problem+json"
ANN = bearer("sales_rep", subject="ann")
BOB = bearer("sales_rep", subject="bob")
BOSS = bearer("sales_manager", subject="boss")
ADA = {"name": "Ada Lovelace", "email": "Ada@Engines.example", "channel": "web"}


@pytest.fixture
def leads(any_platform):
    return LeadsApplication(any_platform)


@pytest.fixture
def client(leads):
    api = http.create_app("leads", "1", checks={"store": leads.check_store}, tokens=TOKENS)
    for router in routers(leads):
        api.include_router(router)
    with TestClient(api, headers=BOSS) as test_client:
        yield test_client


def capture(client, **fields) -> dict:
    response = client.post("/v1/leads", json={**ADA, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def problem_of(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    return response.json()


def qualified(client, **fields) -> dict:
    lead = capture(client, **fields)
    for action in ("contact", "qualify"):
        assert client.post(f"/v1/leads/{lead['id']}/{action}").status_code == 200
    return lead


# -- HTTP ---------------------------------------------------------------------------------------

def test_a_capture_matching_an_open_lead_names_the_earliest(client):
    first = capture(client, phone="+44 20 7183 8750")
    assert first["duplicate_of"] is None
    by_email = capture(client, email="ada@ENGINES.example", name="Ada L.")
    by_phone = capture(client, email="lovelace@elsewhere.example", phone="+44 (20) 71838750", country="GB")
    other = capture(client, email="grace@navy.example")
    assert by_email["duplicate_of"] == first["id"] and by_phone["duplicate_of"] == first["id"]
    assert other["duplicate_of"] is None
    assert client.get(f"/v1/leads/{by_email['id']}").json()["duplicate_of"] == first["id"]
    listed = {lead["id"]: lead["duplicate_of"] for lead in client.get("/v1/leads").json()["items"]}
    assert listed[by_phone["id"]] == first["id"] and listed[first["id"]] is None

    duplicates = client.get(f"/v1/leads/{first['id']}/duplicates")
    assert duplicates.status_code == 200
    assert [lead["id"] for lead in duplicates.json()["items"]] == [by_email["id"], by_phone["id"]]
    # by_email shares only the email with first (by_phone shares first's phone, not by_email's email)
    assert [lead["id"] for lead in client.get(f"/v1/leads/{by_email['id']}/duplicates").json()["items"]] == [
        first["id"]]
    assert client.get(f"/v1/leads/{other['id']}/duplicates").json() == {"items": []}
    assert client.get(f"/v1/leads/{uuid4()}/duplicates").status_code == 404


def test_closed_leads_are_not_duplicates_and_the_earliest_open_one_is_named(client):
    gone = capture(client)
    assert client.post(f"/v1/leads/{gone['id']}/disqualify", json={"reason": "spam"}).status_code == 200
    second = capture(client)
    third = capture(client)
    assert second["duplicate_of"] is None and third["duplicate_of"] == second["id"]
    assert gone["id"] not in [lead["id"] for lead in
                              client.get(f"/v1/leads/{third['id']}/duplicates").json()["items"]]


def test_concurrent_captures_of_one_email_do_not_miss_each_other(client):
    def one(i: int) -> dict:
        return capture(client, name=f"Racer {i}", email="racer@engines.example")

    with ThreadPoolExecutor(8) as pool:
        captured = list(pool.map(one, range(8)))
    originals = [lead for lead in captured if lead["duplicate_of"] is None]
    assert len(originals) == 1, [lead["duplicate_of"] for lead in captured]
    assert {lead["duplicate_of"] for lead in captured if lead is not originals[0]} == {originals[0]["id"]}


def test_duplicates_and_merge_follow_the_visibility_rule(client, leads):
    mine, theirs = capture(client), capture(client)
    leads.assign_lead(AssignLead(lead_id=mine["id"], owner_id="ann", idempotency_key="k1"))
    leads.assign_lead(AssignLead(lead_id=theirs["id"], owner_id="bob", idempotency_key="k2"))
    assert client.get(f"/v1/leads/{mine['id']}/duplicates", headers=ANN).json() == {"items": []}
    assert len(client.get(f"/v1/leads/{mine['id']}/duplicates").json()["items"]) == 1
    assert client.get(f"/v1/leads/{theirs['id']}/duplicates", headers=ANN).status_code == 404
    problem_of(client.post(f"/v1/leads/{mine['id']}/merge", json={"duplicate_id": theirs["id"]}, headers=ANN), 404)
    problem_of(client.post(f"/v1/leads/{theirs['id']}/merge", json={"duplicate_id": mine["id"]}, headers=ANN), 404)
    assert client.get(f"/v1/leads/{theirs['id']}").json()["status"] == "new"


def test_merge_keeps_the_survivor_and_gains_the_others_activities_and_missing_fields(client, leads):
    survivor = capture(client, title="CTO")
    duplicate = capture(client, phone="+44 20 7183 8750", company="Analytical Engines", title="Engineer",
                        company_size=40)
    assert duplicate["duplicate_of"] == survivor["id"]
    for lead, note in ((survivor, "first call"), (duplicate, "met at the fair")):
        logged = client.post(f"/v1/leads/{lead['id']}/activities",
                             json={"kind": "meeting", "at": "2025-03-01T10:00:00+01:00", "note": note})
        assert logged.status_code == 201
    stored = leads.recorder.max_notification_id()
    version = client.get(f"/v1/leads/{survivor['id']}").json()["version"]  # captured, logged, scored

    merged = client.post(f"/v1/leads/{survivor['id']}/merge", json={"duplicate_id": duplicate["id"]},
                         headers={"If-Match": f'"{version}"'})
    assert merged.status_code == 200, merged.text
    body = merged.json()
    kept, gone = body["survivor"], body["merged"]
    assert (kept["phone"], kept["company"], kept["title"], kept["company_size"]) == (
        "+442071838750", "Analytical Engines", "CTO", 40)
    assert kept["status"] == "new" and kept["merged_into"] is None and kept["version"] > version
    assert merged.headers["ETag"] == f'"{kept["version"]}"'
    assert gone["status"] == "merged" and gone["merged_into"] == survivor["id"]
    # The survivor's merge (and, when its score moved, its new score) and the other's end.
    assert leads.recorder.max_notification_id() == stored + (kept["version"] - version) + 1
    notes = [a["note"] for a in client.get(f"/v1/leads/{survivor['id']}/activities").json()["items"]]
    assert sorted(notes) == ["first call", "met at the fair"]
    assert client.get(f"/v1/leads/{duplicate['id']}").json()["status"] == "merged"
    assert client.get("/v1/leads", params={"status": "merged"}).json()["items"][0]["id"] == duplicate["id"]
    assert client.get(f"/v1/leads/{survivor['id']}/duplicates").json() == {"items": []}

    # Refusals: 409 naming why, and nothing stored.
    stored = leads.recorder.max_notification_id()
    converted = qualified(client, email="someone@else.example")
    assert client.post(f"/v1/leads/{converted['id']}/convert").status_code == 202
    fresh = capture(client, email="fresh@else.example")
    stored = leads.recorder.max_notification_id()
    for lead_id, other_id, says in [
            (survivor["id"], survivor["id"], "into itself"),
            (survivor["id"], duplicate["id"], "is merged"),
            (duplicate["id"], fresh["id"], "is merged"),
            (fresh["id"], converted["id"], "is converted"),
            (converted["id"], fresh["id"], "is converted")]:
        problem = problem_of(client.post(f"/v1/leads/{lead_id}/merge", json={"duplicate_id": other_id}), 409)
        assert says in problem["detail"], problem
    problem_of(client.post(f"/v1/leads/{fresh['id']}/merge", json={"duplicate_id": survivor["id"]},
                           headers={"If-Match": '"9"'}), 409)
    assert leads.recorder.max_notification_id() == stored
    problem_of(client.post(f"/v1/leads/{fresh['id']}/merge", json={"duplicate_id": str(uuid4())}), 404)
    assert problem_of(client.post(f"/v1/leads/{fresh['id']}/merge", json={"duplicate_id": "x"}),
                      422)["errors"][0]["field"] == "duplicate_id"
    problem_of(client.post(f"/v1/leads/{fresh['id']}/merge", json={}), 422)


def test_convert_answers_the_stable_ids_once_and_only_from_qualified(client, leads):
    lead = capture(client)
    problem = problem_of(client.post(f"/v1/leads/{lead['id']}/convert"), 409)
    assert "is new; convert needs it to be qualified" in problem["detail"]
    for action in ("contact", "qualify"):
        client.post(f"/v1/leads/{lead['id']}/{action}")
    converted = client.post(f"/v1/leads/{lead['id']}/convert")
    assert converted.status_code == 202, converted.text
    account_id, contact_id = (str(i) for i in conversion_ids(lead["id"]))
    assert converted.json() == {"lead_id": lead["id"], "account_id": account_id, "contact_id": contact_id}
    again = problem_of(client.post(f"/v1/leads/{lead['id']}/convert"), 409)
    assert "is converted" in again["detail"]
    shown = client.get(f"/v1/leads/{lead['id']}").json()
    assert (shown["status"], shown["account_id"], shown["contact_id"]) == ("converted", account_id, contact_id)
    # A converted lead is no longer open: a new capture of the person is no duplicate of it.
    assert capture(client)["duplicate_of"] is None


def test_a_conversion_may_ask_sales_for_an_opportunity(client, leads):
    lead = capture(client)
    for action in ("contact", "qualify"):
        client.post(f"/v1/leads/{lead['id']}/{action}")
    before = leads.recorder.max_notification_id()
    for body, field in [({"opportunity": {"name": " "}}, "opportunity.name"),
                        ({"opportunity": {"name": "Deal", "amount": {"amount": 5.0, "currency": "EUR"}}},
                         "opportunity.amount"),
                        ({"opportunity": {"name": "Deal", "amount": {"amount": "5.001", "currency": "EUR"}}},
                         "opportunity.amount")]:
        problem = problem_of(client.post(f"/v1/leads/{lead['id']}/convert", json=body), 422)
        assert problem["errors"][0]["field"].startswith(field), problem
    assert leads.recorder.max_notification_id() == before  # refused: nothing stored
    converted = client.post(f"/v1/leads/{lead['id']}/convert", json={
        "opportunity": {"name": "First order", "amount": {"amount": "2500.00", "currency": "EUR"}}})
    assert converted.status_code == 202, converted.text
    event = leads.recorder.select_notifications(start=before, limit=10, inclusive_of_start=False)[-1]
    message = EVENTS.to_message(leads.mapper.to_domain_event(event))
    assert (message.opportunity_name, message.opportunity_amount.amount, message.opportunity_amount.currency_code) == (
        "First order", "2500.00", "EUR")


def test_a_repeated_capture_keeps_its_mark(leads):
    first, _ = leads.capture_lead(CaptureLead(name="One", email="row@engines.example", phone=None,
                                              company=None, channel="event", request_key="k1"))
    second, created = leads.capture_lead(CaptureLead(name="Two", email="row@engines.example", phone=None,
                                                     company=None, channel="event", request_key="k2"))
    assert created and second.duplicate_of == str(first.id)
    repeat, created = leads.capture_lead(CaptureLead(name="Two", email="row@engines.example", phone=None,
                                                     company=None, channel="event", request_key="k2"))
    assert not created and repeat.id == second.id and repeat.duplicate_of == str(first.id)


def test_an_import_flags_duplicates_in_the_store_and_in_the_file(client, leads):
    stored = capture(client, email="ada@engines.example", phone="+44 20 7183 8750")
    csv = (b"name,email,phone\n"
           b"Ada again,ADA@engines.example,\n"          # line 2: the stored lead, by email
           b"Grace,grace@navy.example,\n"               # line 3: new
           b"Grace again,grace@navy.example,\n"         # line 4: line 3's lead, in the same batch
           b"Ada's office,office@engines.example,+442071838750\n"  # line 5: the stored lead, by phone
           b"Linus,linus@example.org,\n")       # line 6: new
    result = import_leads(leads, ImportLeads(io.BytesIO(csv), caller="boss"))
    assert (result.captured, result.duplicates, result.failed) == (5, 3, 0)
    marks = {lead["name"]: lead["duplicate_of"] for lead in client.get("/v1/leads").json()["items"]}
    assert marks["Ada again"] == marks["Ada's office"] == stored["id"]
    assert marks["Grace"] is None and marks["Linus"] is None
    grace = next(lead for lead in client.get("/v1/leads", params={"q": "grace"}).json()["items"]
                 if lead["name"] == "Grace")
    assert marks["Grace again"] == grace["id"]
    again = import_leads(leads, ImportLeads(io.BytesIO(csv), caller="boss"))
    assert (again.captured, again.already_imported, again.duplicates) == (0, 5, 0)


# -- gRPC ---------------------------------------------------------------------------------------

def run(app: LeadsApplication, address: str, scenario) -> None:
    serve_and_call(registrations(app), leads_pb2_grpc.LeadsServiceStub, address, scenario)


def test_duplicates_merge_and_convert_over_grpc(leads, address):
    boss, ann = grpc_auth("sales_manager", subject="boss"), grpc_auth("sales_rep", subject="ann")

    async def scenario(stub):
        def capture_request(**fields):
            return leads_pb2.CaptureLeadRequest(**{"name": "Grace", "email": "grace@navy.example",
                                                   "channel": events_pb2.CHANNEL_REFERRAL, **fields})

        first = await stub.CaptureLead(capture_request(), metadata=boss)
        second = await stub.CaptureLead(capture_request(phone="+1 202 555 0140", company="Navy"), metadata=boss)
        assert first.duplicate_of == "" and second.duplicate_of == first.id
        assert (await stub.GetLead(leads_pb2.GetLeadRequest(lead_id=second.id), metadata=boss)).duplicate_of == first.id
        listed = await stub.ListDuplicates(leads_pb2.ListDuplicatesRequest(lead_id=first.id), metadata=boss)
        assert [lead.id for lead in listed.leads] == [second.id]
        await refused(stub.ListDuplicates(leads_pb2.ListDuplicatesRequest(lead_id=first.id), metadata=ann),
                      grpc.StatusCode.NOT_FOUND)

        details = await refused(stub.MergeLeads(leads_pb2.MergeLeadsRequest(
            lead_id=first.id, duplicate_id=first.id), metadata=boss), grpc.StatusCode.FAILED_PRECONDITION)
        assert "into itself" in details
        await refused(stub.MergeLeads(leads_pb2.MergeLeadsRequest(lead_id=first.id, duplicate_id=second.id,
                                                                  expected_version=5), metadata=boss),
                      grpc.StatusCode.ABORTED)
        await refused(stub.MergeLeads(leads_pb2.MergeLeadsRequest(lead_id=first.id, duplicate_id="nope"),
                                      metadata=boss), grpc.StatusCode.INVALID_ARGUMENT)
        merged = await stub.MergeLeads(leads_pb2.MergeLeadsRequest(lead_id=first.id, duplicate_id=second.id),
                                       metadata=boss)
        assert merged.survivor.phone == "+12025550140" and merged.survivor.company == "Navy"
        assert merged.merged.status == leads_pb2.LEAD_STATUS_MERGED and merged.merged.merged_into == first.id
        details = await refused(stub.MergeLeads(leads_pb2.MergeLeadsRequest(
            lead_id=first.id, duplicate_id=second.id), metadata=boss), grpc.StatusCode.FAILED_PRECONDITION)
        assert "is merged" in details

        details = await refused(stub.ConvertLead(leads_pb2.ConvertLeadRequest(lead_id=first.id), metadata=boss),
                                grpc.StatusCode.FAILED_PRECONDITION)
        assert "is new" in details
        await stub.ContactLead(leads_pb2.ContactLeadRequest(lead_id=first.id), metadata=boss)
        await stub.QualifyLead(leads_pb2.QualifyLeadRequest(lead_id=first.id), metadata=boss)
        converted = await stub.ConvertLead(leads_pb2.ConvertLeadRequest(lead_id=first.id), metadata=boss)
        assert (converted.account_id, converted.contact_id) == tuple(str(i) for i in conversion_ids(first.id))
        assert converted.lead.status == leads_pb2.LEAD_STATUS_CONVERTED
        assert converted.lead.account_id == converted.account_id
        details = await refused(stub.ConvertLead(leads_pb2.ConvertLeadRequest(lead_id=first.id), metadata=boss),
                                grpc.StatusCode.FAILED_PRECONDITION)
        assert "is converted" in details
        await refused(stub.MergeLeads(leads_pb2.MergeLeadsRequest(lead_id=first.id, duplicate_id=str(uuid4())),
                                      metadata=boss), grpc.StatusCode.NOT_FOUND)

    run(leads, address, scenario)


def test_leads_import_over_grpc(leads, address):
    boss, analyst = grpc_auth("sales_manager", subject="boss"), grpc_auth("analyst", subject="ana")
    csv = (b"name;email;phone\n"
           b"Ada;ada@engines.example;\n"
           b"Bad;not-an-email;\n"                     # line 3: refused, by line and field
           b"Ada again;ADA@engines.example;\n")       # line 4: a duplicate of line 2

    async def scenario(stub):
        result = await stub.ImportLeads(leads_pb2.ImportLeadsRequest(
            file=csv, channel=events_pb2.CHANNEL_EVENT), metadata=boss)
        assert (result.rows, result.captured, result.duplicates, result.failed) == (3, 2, 1, 1)
        assert [(e.line, e.field) for e in result.errors] == [(3, "email")]
        again = await stub.ImportLeads(leads_pb2.ImportLeadsRequest(file=csv), metadata=boss)
        assert (again.import_id, again.captured, again.already_imported) == (result.import_id, 0, 2)
        before = leads.recorder.max_notification_id()
        details = await refused(stub.ImportLeads(leads_pb2.ImportLeadsRequest(file=b"\x00\x01binary"),
                                                 metadata=boss), grpc.StatusCode.INVALID_ARGUMENT)
        assert details.startswith("file:")
        await refused(stub.ImportLeads(leads_pb2.ImportLeadsRequest(file=csv), metadata=analyst),
                      grpc.StatusCode.PERMISSION_DENIED)
        await refused(stub.ImportLeads(leads_pb2.ImportLeadsRequest(file=b"name,email\n" + b"x" * 600_000),
                                       metadata=boss), grpc.StatusCode.RESOURCE_EXHAUSTED)
        assert leads.recorder.max_notification_id() == before  # refused: nothing stored

    run(leads, address, scenario)


def test_captures_arriving_together_share_a_transaction_and_keep_their_own_answers(leads):
    """Captures queued behind a running one are saved together (crm_runtime.group_commit):
    duplicates among them are flagged in arrival order, each stores its own caller's trace,
    and a batch that meets a repeated key captures each again alone, with its own answer."""
    def command(name: str, email: str, key: str) -> CaptureLead:
        return CaptureLead(name=name, email=email, phone=None, company=None, channel="web", request_key=key)

    kept, _ = leads.capture_lead(command("Kept", "kept@engines.example", "kept"))
    sizes: list[int] = []
    together = leads._captures.apply

    def run_together(commands: list[CaptureLead]) -> list:
        release = threading.Event()

        def apply(captures):
            if not sizes:
                release.wait(10)  # the first batch holds the others in the queue
            sizes.append(len(captures))
            return together(captures)

        leads._captures.apply = apply
        answers: list = [None] * len(commands)

        def call(n: int) -> None:
            with tracing.bound(None, f"corr-{n}"):
                try:
                    answers[n] = leads.capture_lead(commands[n])
                except Exception as exc:  # noqa: BLE001
                    answers[n] = exc

        threads = [threading.Thread(target=call, args=(n,)) for n in range(len(commands))]
        threads[0].start()
        wait_for(lambda: len(leads._captures._queue) == 1)
        for thread in threads[1:]:
            thread.start()
        wait_for(lambda: len(leads._captures._queue) == len(commands))
        release.set()
        for thread in threads:
            thread.join(10)
        leads._captures.apply = together
        assert sizes == [1, len(commands) - 1]  # the first alone, then all the others at once
        sizes.clear()
        return answers

    def stored_correlation(lead) -> str:
        notifications = leads.recorder.select_events(lead.id)
        return trace_context(leads.mapper.to_domain_event(notifications[0]))["correlation_id"]

    racers = run_together([command(f"Racer {n}", "racer@engines.example", f"racer-{n}") for n in range(5)])
    originals = [lead for lead, _ in racers if lead.duplicate_of is None]
    assert len(originals) == 1 and all(created for _, created in racers)
    assert {lead.duplicate_of for lead, _ in racers if lead is not originals[0]} == {str(originals[0].id)}
    assert [stored_correlation(lead) for lead, _ in racers] == [f"corr-{n}" for n in range(5)]

    mixed = run_together([
        command("Blocker", "blocker@engines.example", "blocker"),
        command("Twin", "twin@engines.example", "twin"),
        command("Twin", "twin@engines.example", "twin"),
        command("Not Kept", "kept@engines.example", "kept"),  # a used key, another request
        command("Fresh", "kept@engines.example", "fresh"),
    ])
    (twin_a, created_a), (twin_b, created_b) = mixed[1], mixed[2]
    assert twin_a.id == twin_b.id and {created_a, created_b} == {True, False}
    assert isinstance(mixed[3], Conflict)
    fresh, created = mixed[4]
    assert created and fresh.duplicate_of == str(kept.id)
    assert leads.get_lead(fresh.id).duplicate_of == str(kept.id)
    assert [stored_correlation(mixed[n][0]) for n in (0, 4)] == ["corr-0", "corr-4"]


def wait_for(condition) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "the captures did not queue"
        time.sleep(0.001)


def test_a_batch_looks_up_all_its_emails_and_phones_at_once(leads):
    """flag_duplicates on a batch larger than one look-up statement (its emails and phones
    are looked up a hundred at a time): each lead is marked after the earliest open lead
    with its email, else its phone, stored or earlier in the batch; closed leads are not
    duplicates."""
    from crm_leads import merging

    def command(name: str, email: str, phone: str | None = None) -> CaptureLead:
        return CaptureLead(name=name, email=email, phone=phone, company=None, channel="web")

    by_email = [leads.capture_lead(command(f"Stored {n}", f"stored{n}@batch.example"))[0] for n in range(60)]
    by_phone = leads.capture_lead(command("Switchboard", "board@batch.example", "+1 415 555 0100"))[0]
    closed = leads.capture_lead(command("Closed", "closed@batch.example"))[0]
    leads.move_lead(MoveLead(lead_id=str(closed.id), action="disqualify", reason="test", caller=None))
    batch = [leads.new_lead(command(f"New {n}", f"STORED{n}@batch.example", f"+1 415 555 {1000 + n}"))[0]
             for n in range(60)]
    batch += [leads.new_lead(command("Calls", f"calls{n}@batch.example", "+14155550100"))[0] for n in range(3)]
    batch += [leads.new_lead(command("Again", "closed@batch.example"))[0],
              leads.new_lead(command("Again twice", "closed@batch.example"))[0]]
    assert len({point for lead in batch for point in merging._points(lead)}) > merging._UNION_CHUNK
    assert merging.flag_duplicates(leads, batch) == 64
    assert [lead.duplicate_of for lead in batch[:60]] == [str(lead.id) for lead in by_email]
    assert {lead.duplicate_of for lead in batch[60:63]} == {str(by_phone.id)}
    assert batch[63].duplicate_of is None and batch[64].duplicate_of == str(batch[63].id)
