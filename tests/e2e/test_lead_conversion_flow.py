"""A web lead worked from capture to customer, through the processes the leads and sales
contexts declare (leads, leads-relay, leads-worker, sales, sales-relay, sales-worker) on the
real broker: captured over HTTP (a second capture of the person flagged as its duplicate
and merged into it), contacted, qualified and converted; the account and contact answer on
the sales API and the lead shows the account it joined. A second lead of the same company
domain, worked over gRPC, joins the same account. The events are read in order from both
topics with a plain kafka-python consumer."""

from collections import defaultdict

import grpc
import httpx
import pytest

from crm.leads.v1 import events_pb2 as leads_events
from crm.leads.v1 import leads_pb2, leads_pb2_grpc
from crm.sales.v1 import events_pb2 as sales_events
from crm_leads.domain import conversion_ids
from tests.conftest import bearer, grpc_auth
from tests.kafka_helpers import headers, read_topic
from tests.platform_harness import grpc_target, start_platform, store_env, url, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]
PROCESSES = ["leads", "leads-relay", "leads-worker", "sales", "sales-relay", "sales-worker"]


@pytest.fixture(params=["sqlite", "postgres"])
def platform(request, tmp_path, kafka_bootstrap, topic_prefix):
    env = store_env(request)
    running = start_platform(tmp_path, kafka_bootstrap, topic_prefix, names=PROCESSES, extra_env=env)
    yield running
    running.stop()


def by_subject(records) -> dict[str, list[str]]:
    """Each aggregate's event types in topic order (one aggregate is one partition)."""
    found: dict[str, list[str]] = defaultdict(list)
    seen = set()
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        attributes = headers(record)
        if attributes["ce_id"] in seen:  # a relay re-send: the same event again
            continue
        seen.add(attributes["ce_id"])
        found[attributes["ce_subject"]].append(attributes["ce_type"].rsplit(".", 1)[1])
    return found


def test_a_web_lead_becomes_an_account_and_a_contact_and_a_second_lead_joins_it(
        platform, kafka_bootstrap, topic_prefix):
    leads, sales = url("leads"), url("sales")
    boss = httpx.Client(timeout=10, headers=bearer("sales_manager", subject="boss"))
    rep = httpx.Client(timeout=10, headers=bearer("sales_rep", subject="rep-ada"))
    manager = grpc_auth("sales_manager", subject="boss")
    rep_grpc = grpc_auth("sales_rep", subject="rep-ada")

    # Captured over HTTP; the same person again is captured as its duplicate.
    ada = boss.post(f"{leads}/v1/leads", json={
        "name": "Ada Lovelace", "email": "ada@engines.example", "company": "Analytical Engines",
        "channel": "web", "country": "GB", "industry": "Machinery"}).json()
    again = boss.post(f"{leads}/v1/leads", json={
        "name": "Ada L.", "email": "ADA@engines.example", "phone": "+44 20 7183 8750", "channel": "event"}).json()
    assert ada["duplicate_of"] is None and again["duplicate_of"] == ada["id"]
    assert [d["id"] for d in boss.get(f"{leads}/v1/leads/{ada['id']}/duplicates").json()["items"]] == [again["id"]]
    merged = boss.post(f"{leads}/v1/leads/{ada['id']}/merge", json={"duplicate_id": again["id"]})
    assert merged.status_code == 200, merged.text
    assert merged.json()["survivor"]["phone"] == "+442071838750"

    with grpc.insecure_channel(grpc_target("leads")) as channel:
        stub = leads_pb2_grpc.LeadsServiceStub(channel)
        stub.AssignLead(leads_pb2.AssignLeadRequest(lead_id=ada["id"], owner_id="rep-ada", idempotency_key="a1"),
                        metadata=manager, timeout=10)

        # The rep works it over HTTP.
        for action in ("contact", "qualify"):
            assert rep.post(f"{leads}/v1/leads/{ada['id']}/{action}").status_code == 200
        converted = rep.post(f"{leads}/v1/leads/{ada['id']}/convert", json={"opportunity": {
            "name": "Engines for 2027", "amount": {"amount": "12000.00", "currency": "EUR"}}})
        assert converted.status_code == 202, converted.text
        account_id, contact_id = converted.json()["account_id"], converted.json()["contact_id"]
        assert (account_id, contact_id) == tuple(str(i) for i in conversion_ids(ada["id"]))
        assert rep.post(f"{leads}/v1/leads/{ada['id']}/convert").status_code == 409

        account = wait_for(lambda: (r := rep.get(f"{sales}/v1/accounts/{account_id}")).status_code == 200 and r.json(),
                           what="the account opened by sales")
        assert (account["name"], account["domain"], account["owner_id"]) == (
            "Analytical Engines", "engines.example", "rep-ada")
        contact = rep.get(f"{sales}/v1/contacts/{contact_id}").json()
        assert (contact["account_id"], contact["email"], contact["phone"]) == (
            account_id, "ada@engines.example", "+442071838750")
        # The conversion named an opportunity: sales opened it on the new account, once.
        deals = wait_for(lambda: rep.get(f"{sales}/v1/opportunities", params={"account_id": account_id}
                                         ).json()["items"], what="the converted lead's opportunity")
        assert [(d["name"], d["amount"]) for d in deals] == [
            ("Engines for 2027", {"amount": "12000.00", "currency": "EUR"})]

        # A second lead of the same company, worked over gRPC, joins that account.
        charles = stub.CaptureLead(leads_pb2.CaptureLeadRequest(
            name="Charles Babbage", email="charles@Engines.Example", company="Engines UK",
            channel=leads_events.CHANNEL_REFERRAL), metadata=manager, timeout=10)
        assert charles.duplicate_of == ""
        stub.AssignLead(leads_pb2.AssignLeadRequest(lead_id=charles.id, owner_id="rep-ada", idempotency_key="c1"),
                        metadata=manager, timeout=10)
        stub.ContactLead(leads_pb2.ContactLeadRequest(lead_id=charles.id), metadata=rep_grpc, timeout=10)
        stub.QualifyLead(leads_pb2.QualifyLeadRequest(lead_id=charles.id), metadata=rep_grpc, timeout=10)
        second = stub.ConvertLead(leads_pb2.ConvertLeadRequest(lead_id=charles.id), metadata=rep_grpc, timeout=10)
        assert (second.account_id, second.contact_id) == tuple(str(i) for i in conversion_ids(charles.id))
        assert second.lead.status == leads_pb2.LEAD_STATUS_CONVERTED

        joined = wait_for(lambda: (lead := stub.GetLead(leads_pb2.GetLeadRequest(lead_id=charles.id),
                                                        metadata=rep_grpc, timeout=10)).account_id == account_id
                          and lead, what="the second lead showing the account it joined")
        assert joined.contact_id == second.contact_id
    charles_contact = rep.get(f"{sales}/v1/contacts/{second.contact_id}").json()
    assert charles_contact["account_id"] == account_id
    assert rep.get(f"{sales}/v1/accounts/{second.account_id}").status_code == 404  # never opened
    assert [a["id"] for a in rep.get(f"{sales}/v1/accounts").json()["items"]] == [account_id]
    assert {c["id"] for c in rep.get(f"{sales}/v1/contacts", params={"account_id": account_id}).json()["items"]} == {
        contact_id, second.contact_id}
    assert rep.get(f"{leads}/v1/leads/{ada['id']}").json()["account_id"] == account_id

    # The events, in order per lead, on the leads topic...
    def leads_topic_done(records) -> bool:
        return by_subject(records).get(charles.id, [])[-1:] == ["LeadAccountLinked"] and \
            "LeadAccountLinked" in by_subject(records).get(ada["id"], [])

    leads_records = read_topic(kafka_bootstrap, f"{topic_prefix}crm.leads.events.v1", leads_topic_done)
    flows = by_subject(leads_records)
    assert flows[ada["id"]] == ["LeadCaptured", "LeadsMerged", "LeadAssigned", "LeadContacted",
                                "LeadQualified", "LeadConverted", "LeadAccountLinked"]
    assert flows[again["id"]] == ["LeadCaptured", "LeadDuplicateDetected", "LeadMergedInto"]
    assert flows[charles.id] == ["LeadCaptured", "LeadAssigned", "LeadContacted", "LeadQualified",
                                 "LeadConverted", "LeadAccountLinked"]
    messages = {(headers(r)["ce_subject"], headers(r)["ce_type"]): r.value for r in leads_records}
    conversion = leads_events.LeadConverted.FromString(messages[(ada["id"], "crm.leads.v1.LeadConverted")])
    assert (conversion.owner_id, conversion.email_domain, conversion.account_id, conversion.company) == (
        "rep-ada", "engines.example", account_id, "Analytical Engines")
    duplicate = leads_events.LeadDuplicateDetected.FromString(
        messages[(again["id"], "crm.leads.v1.LeadDuplicateDetected")])
    assert (duplicate.duplicate_of, duplicate.matched_on) == (ada["id"], "email")
    linked = leads_events.LeadAccountLinked.FromString(messages[(charles.id, "crm.leads.v1.LeadAccountLinked")])
    assert (linked.account_id, linked.account_reused) == (account_id, True)

    # ...and on the sales topic: one account, two contacts naming their leads.
    sales_records = read_topic(kafka_bootstrap, f"{topic_prefix}crm.sales.events.v1",
                               lambda records: len(by_subject(records)) >= 3)
    sales_flows = by_subject(sales_records)
    assert sales_flows[account_id] == ["AccountOpened"]
    assert sales_flows[contact_id] == ["ContactAdded"] and sales_flows[second.contact_id] == ["ContactAdded"]
    added = {headers(r)["ce_subject"]: sales_events.ContactAdded.FromString(r.value) for r in sales_records
             if headers(r)["ce_type"] == "crm.sales.v1.ContactAdded"}
    assert (added[contact_id].lead_id, added[contact_id].account_reused) == (ada["id"], False)
    assert (added[second.contact_id].lead_id, added[second.contact_id].account_id,
            added[second.contact_id].account_reused) == (charles.id, account_id, True)
    # Cause before effect: each lead's conversion is on the leads topic before its contact
    # was added (the sales event's time is after the conversion's).
    for lead_id, contact in ((ada["id"], contact_id), (charles.id, second.contact_id)):
        converted_at = leads_events.LeadConverted.FromString(
            messages[(lead_id, "crm.leads.v1.LeadConverted")]).converted_at.ToDatetime()
        assert added[contact].added_at.ToDatetime() >= converted_at
    platform.check_alive()
