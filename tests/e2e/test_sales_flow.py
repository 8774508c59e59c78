"""Accounts and contacts through the processes the sales context declares (`sales` and
`sales-relay`, run as `python -m crm_runtime sales api|relay`) on the real broker."""

from pathlib import Path
from uuid import uuid4

import grpc
import httpx
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from crm.sales.v1 import events_pb2, sales_pb2, sales_pb2_grpc
from crm_runtime.settings import PlatformSettings
from crm_sales.application import SalesApplication
from crm_sales.domain import Account, validate_account
from tests.conftest import bearer, grpc_auth
from tests.kafka_helpers import at_least, headers, read_topic
from tests.platform_harness import grpc_target, start_platform, store_env, url

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


@pytest.fixture(params=["sqlite", "postgres"])
def platform(request, tmp_path, kafka_bootstrap, topic_prefix):
    env = store_env(request)
    running = start_platform(tmp_path, kafka_bootstrap, topic_prefix, names=["sales", "sales-relay"],
                             extra_env=env)
    yield running
    running.stop()


def test_accounts_and_contacts_flow_to_the_sales_topic(platform, kafka_bootstrap, topic_prefix):
    sales = url("sales")
    rep = httpx.Client(timeout=10, headers=bearer("sales_rep", subject="rep-ada"))
    body = {"name": "Analytical Engines", "domain": "Engines.Example", "tier": "strategic", "region": "EMEA"}
    created = rep.post(f"{sales}/v1/accounts", json=body, headers={"Idempotency-Key": "acc-1"})
    assert created.status_code == 201, created.text
    account = created.json()
    assert account["owner_id"] == "rep-ada" and account["domain"] == "engines.example"
    assert rep.post(f"{sales}/v1/accounts", json=body, headers={"Idempotency-Key": "acc-1"}).json() == account
    contact = rep.post(f"{sales}/v1/contacts", json={"account_id": account["id"], "name": "Ada",
                                                     "email": "ada@engines.example"}).json()
    changed = rep.patch(f"{sales}/v1/accounts/{account['id']}", json={"tier": "enterprise"},
                        headers={"If-Match": '"1"'})
    assert changed.status_code == 200 and changed.json()["version"] == 2
    assert [a["id"] for a in rep.get(f"{sales}/v1/accounts").json()["items"]] == [account["id"]]

    with grpc.insecure_channel(grpc_target("sales")) as channel:
        stub = sales_pb2_grpc.SalesServiceStub(channel)
        reply = stub.UpdateContact(sales_pb2.UpdateContactRequest(
            contact_id=contact["id"], expected_version=1, phone="+44 20 7183 8750"),
            metadata=grpc_auth("sales_rep", subject="rep-ada"), timeout=10)
        assert reply.contact.phone == "+442071838750" and reply.contact.owner_id == "rep-ada"
        with pytest.raises(grpc.RpcError) as hidden:
            stub.GetAccount(sales_pb2.GetAccountRequest(account_id=account["id"]),
                            metadata=grpc_auth("sales_rep", subject="rep-bob"), timeout=10)
        assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
        assert "crm.sales.v1.SalesService" in ProtoReflectionDescriptorDatabase(channel).get_services()

    records = read_topic(kafka_bootstrap, f"{topic_prefix}crm.sales.events.v1", at_least(4))
    types = {(headers(r)["ce_subject"], headers(r)["ce_type"]) for r in records}
    assert types == {(account["id"], "crm.sales.v1.AccountOpened"), (account["id"], "crm.sales.v1.AccountChanged"),
                     (contact["id"], "crm.sales.v1.ContactAdded"), (contact["id"], "crm.sales.v1.ContactChanged")}
    opened = next(events_pb2.AccountOpened.FromString(r.value) for r in records
                  if headers(r)["ce_type"] == "crm.sales.v1.AccountOpened")
    assert opened.tier == events_pb2.TIER_STRATEGIC and opened.owner_id == "rep-ada"


def test_a_restarted_api_lists_what_was_written_while_it_was_down(platform):
    platform.kill("sales")
    store = SalesApplication(PlatformSettings(
        store=platform.env.get("CRM_STORE", "sqlite"), data_dir=Path(platform.env["CRM_DATA_DIR"]),
        postgres_dbname=platform.env.get("CRM_POSTGRES_DBNAME", "crm")))
    name = f"Written offline {uuid4().hex[:6]}"
    # Straight into the store: the index learns of it only from the log.
    store.save(Account.open(validate_account(name, "rep-ada"), uuid4(), opened_by="tool"))
    platform.start("sales")
    platform.wait_ready()
    listed = httpx.get(url("sales") + "/v1/accounts", headers=bearer("sales_manager"), timeout=10).json()
    assert [a["name"] for a in listed["items"]] == [name]
