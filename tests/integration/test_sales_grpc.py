"""crm.sales.v1.SalesService against an in-process grpc.aio server (the runtime's
build_server: auth interceptor, @rpc permissions, error table) on SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from crm.sales.v1 import events_pb2, sales_pb2, sales_pb2_grpc
from crm_sales.adapters.grpc import registrations
from crm_sales.application import SalesApplication
from tests.conftest import grpc_auth
from tests.grpc_harness import refused, serve_and_call

ANN = grpc_auth("sales_rep", subject="ann")
BOB = grpc_auth("sales_rep", subject="bob")
BOSS = grpc_auth("sales_manager", subject="boss")


def run(app: SalesApplication, address: str, scenario) -> None:
    serve_and_call(registrations(app), sales_pb2_grpc.SalesServiceStub, address, scenario)


def test_accounts_over_grpc(any_platform, address):
    app = SalesApplication(any_platform)

    async def scenario(stub):
        created = await stub.CreateAccount(sales_pb2.CreateAccountRequest(
            name="Acme", domain="ACME.example", tier=events_pb2.TIER_SMB, region="EMEA",
            request_id="r-1"), metadata=ANN)
        account = created.account
        assert created.created and account.owner_id == "ann" and account.domain == "acme.example"
        assert account.version == 1 and account.created_at.ToDatetime() <= datetime.utcnow()
        repeat = await stub.CreateAccount(sales_pb2.CreateAccountRequest(
            name="Acme", domain="ACME.example", tier=events_pb2.TIER_SMB, region="EMEA",
            request_id="r-1"), metadata=ANN)
        assert not repeat.created and repeat.account == account
        got = await stub.GetAccount(sales_pb2.GetAccountRequest(account_id=account.id), metadata=ANN)
        assert got.account == account

        detail = await refused(stub.CreateAccount(sales_pb2.CreateAccountRequest(
            name="Bad", domain="http://x"), metadata=ANN), grpc.StatusCode.INVALID_ARGUMENT)
        assert detail.startswith("domain:")
        await refused(stub.CreateAccount(sales_pb2.CreateAccountRequest(name="Bad", tier=42), metadata=ANN),
                      grpc.StatusCode.INVALID_ARGUMENT)
        await refused(stub.CreateAccount(sales_pb2.CreateAccountRequest(name="Theirs", owner_id="bob"),
                                         metadata=ANN), grpc.StatusCode.PERMISSION_DENIED)
        await refused(stub.GetAccount(sales_pb2.GetAccountRequest(account_id="nope"), metadata=ANN),
                      grpc.StatusCode.INVALID_ARGUMENT)
        await refused(stub.GetAccount(sales_pb2.GetAccountRequest(account_id=account.id), metadata=BOB),
                      grpc.StatusCode.NOT_FOUND)

        await refused(stub.UpdateAccount(sales_pb2.UpdateAccountRequest(account_id=account.id, name="X"),
                                         metadata=ANN), grpc.StatusCode.FAILED_PRECONDITION)
        await refused(stub.UpdateAccount(sales_pb2.UpdateAccountRequest(
            account_id=account.id, expected_version=5, name="X"), metadata=ANN), grpc.StatusCode.ABORTED)
        await refused(stub.UpdateAccount(sales_pb2.UpdateAccountRequest(
            account_id=account.id, expected_version=1, name="X"), metadata=BOB), grpc.StatusCode.NOT_FOUND)
        updated = (await stub.UpdateAccount(sales_pb2.UpdateAccountRequest(
            account_id=account.id, expected_version=1, domain="", tier=events_pb2.TIER_STRATEGIC),
            metadata=ANN)).account
        assert (updated.domain, updated.tier, updated.region, updated.version) == \
            ("", events_pb2.TIER_STRATEGIC, "EMEA", 2)
        reassigned = (await stub.UpdateAccount(sales_pb2.UpdateAccountRequest(
            account_id=account.id, expected_version=2, owner_id="bob"), metadata=BOSS)).account
        assert reassigned.owner_id == "bob"

        for i in range(5):
            await stub.CreateAccount(sales_pb2.CreateAccountRequest(name=f"Bolt {i}"), metadata=ANN)
        names, token = [], ""
        while True:
            page = await stub.ListAccounts(sales_pb2.ListAccountsRequest(
                page_size=2, page_token=token, name_prefix="bolt"), metadata=BOSS)
            names += [a.name for a in page.accounts]
            token = page.next_page_token
            if not token:
                break
        assert names == [f"Bolt {i}" for i in range(5)]
        mine = await stub.ListAccounts(sales_pb2.ListAccountsRequest(), metadata=ANN)
        assert {a.owner_id for a in mine.accounts} == {"ann"} and len(mine.accounts) == 5
        bobs = await stub.ListAccounts(sales_pb2.ListAccountsRequest(owner_id="bob"), metadata=BOSS)
        assert [a.id for a in bobs.accounts] == [account.id]
        since = Timestamp()
        since.FromDatetime(datetime.now(UTC) + timedelta(hours=1))
        assert not (await stub.ListAccounts(sales_pb2.ListAccountsRequest(updated_since=since),
                                            metadata=BOSS)).accounts
        detail = await refused(stub.ListAccounts(sales_pb2.ListAccountsRequest(page_token="bogus"), metadata=BOSS),
                               grpc.StatusCode.INVALID_ARGUMENT)
        assert detail.startswith("page_token:")
        await refused(stub.ListAccounts(sales_pb2.ListAccountsRequest(page_size=-1), metadata=BOSS),
                      grpc.StatusCode.INVALID_ARGUMENT)
        assert len((await stub.ListAccounts(sales_pb2.ListAccountsRequest(page_size=10_000),
                                            metadata=BOSS)).accounts) == 6

        await refused(stub.ListAccounts(sales_pb2.ListAccountsRequest()), grpc.StatusCode.UNAUTHENTICATED)
        await refused(stub.CreateAccount(sales_pb2.CreateAccountRequest(name="A"),
                                         metadata=grpc_auth("analyst")), grpc.StatusCode.PERMISSION_DENIED)

    run(app, address, scenario)


def test_contacts_over_grpc(any_platform, address):
    app = SalesApplication(any_platform)

    async def scenario(stub):
        anns = (await stub.CreateAccount(sales_pb2.CreateAccountRequest(name="Ann's"), metadata=ANN)).account
        bobs = (await stub.CreateAccount(sales_pb2.CreateAccountRequest(name="Bob's"), metadata=BOB)).account
        added = await stub.CreateContact(sales_pb2.CreateContactRequest(
            account_id=anns.id, name="Ada", email="Ada@Example.com", phone="+44 20 7183 8750",
            request_id="c-1"), metadata=ANN)
        contact = added.contact
        assert added.created and (contact.email, contact.phone, contact.owner_id) == \
            ("Ada@example.com", "+442071838750", "ann")
        assert not (await stub.CreateContact(sales_pb2.CreateContactRequest(
            account_id=anns.id, name="Ada", email="Ada@Example.com", phone="+44 20 7183 8750",
            request_id="c-1"), metadata=ANN)).created
        detail = await refused(stub.CreateContact(sales_pb2.CreateContactRequest(
            account_id=bobs.id, name="Eve"), metadata=ANN), grpc.StatusCode.INVALID_ARGUMENT)
        assert detail.startswith("account_id:")
        detail = await refused(stub.CreateContact(sales_pb2.CreateContactRequest(
            account_id=anns.id, name="Eve", phone="12"), metadata=ANN), grpc.StatusCode.INVALID_ARGUMENT)
        assert detail.startswith("phone:")
        await refused(stub.GetContact(sales_pb2.GetContactRequest(contact_id=contact.id), metadata=BOB),
                      grpc.StatusCode.NOT_FOUND)
        assert (await stub.GetContact(sales_pb2.GetContactRequest(contact_id=contact.id),
                                      metadata=BOSS)).contact == contact

        await refused(stub.UpdateContact(sales_pb2.UpdateContactRequest(contact_id=contact.id, name="A"),
                                         metadata=ANN), grpc.StatusCode.FAILED_PRECONDITION)
        await refused(stub.UpdateContact(sales_pb2.UpdateContactRequest(
            contact_id=contact.id, expected_version=1, account_id=bobs.id), metadata=ANN),
            grpc.StatusCode.INVALID_ARGUMENT)
        changed = (await stub.UpdateContact(sales_pb2.UpdateContactRequest(
            contact_id=contact.id, expected_version=1, phone="", name="Ada Lovelace"), metadata=ANN)).contact
        assert (changed.name, changed.phone, changed.email, changed.version) == \
            ("Ada Lovelace", "", "Ada@example.com", 2)
        await refused(stub.UpdateContact(sales_pb2.UpdateContactRequest(
            contact_id=contact.id, expected_version=1, name="B"), metadata=ANN), grpc.StatusCode.ABORTED)
        moved = (await stub.UpdateContact(sales_pb2.UpdateContactRequest(
            contact_id=contact.id, expected_version=2, account_id=bobs.id), metadata=BOSS)).contact
        assert (moved.account_id, moved.owner_id) == (bobs.id, "bob")

        await stub.CreateContact(sales_pb2.CreateContactRequest(account_id=anns.id, name="Zoe"), metadata=ANN)
        listed = await stub.ListContacts(sales_pb2.ListContactsRequest(), metadata=ANN)
        assert [c.name for c in listed.contacts] == ["Zoe"]
        of_bobs = await stub.ListContacts(sales_pb2.ListContactsRequest(account_id=bobs.id), metadata=BOSS)
        assert [c.name for c in of_bobs.contacts] == ["Ada Lovelace"]
        first = await stub.ListContacts(sales_pb2.ListContactsRequest(page_size=1), metadata=BOSS)
        second = await stub.ListContacts(sales_pb2.ListContactsRequest(page_size=1, page_token=first.next_page_token),
                                         metadata=BOSS)
        assert [c.name for c in [*first.contacts, *second.contacts]] == ["Ada Lovelace", "Zoe"]
        assert not second.next_page_token

    run(app, address, scenario)
