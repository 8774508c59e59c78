"""The sales application on eventsourcing's in-memory store: commands, the visibility rule,
versions, idempotency, and lists from the query model."""

from datetime import UTC, datetime, timedelta

import pytest

import crm_sales.permissions  # noqa: F401 - declares the resources the roles act on
from crm_runtime.auth import PermissionDenied, Principal
from crm_runtime.errors import Conflict, FailedPrecondition, InvalidField, NotFound
from crm_runtime.settings import PlatformSettings
from crm_sales.application import AddContact, ChangeAccount, ChangeContact, ListRecords, OpenAccount, SalesApplication

MEMORY = PlatformSettings(store="memory")
ANN = Principal("ann", frozenset({"sales_rep"}))
BOB = Principal("bob", frozenset({"sales_rep"}))
BOSS = Principal("boss", frozenset({"sales_manager"}))


@pytest.fixture
def sales():
    return SalesApplication(MEMORY)


def open_for(sales, caller, name="Acme", **fields):
    return sales.open_account(OpenAccount(name=name, caller=caller, **fields))[0]


def test_the_owner_defaults_to_the_caller_and_only_assigners_choose_another(sales):
    assert open_for(sales, ANN).owner_id == "ann"
    with pytest.raises(PermissionDenied, match="ann may not assign accounts"):
        open_for(sales, ANN, owner_id="bob")
    assert open_for(sales, ANN, owner_id="ann").owner_id == "ann"
    assert open_for(sales, BOSS, owner_id="bob").owner_id == "bob"
    with pytest.raises(InvalidField, match="owner_id: is required"):
        sales.open_account(OpenAccount(name="Nobody's"))  # an internal call must name one


def test_create_is_idempotent_per_caller_and_refuses_another_request(sales):
    first, created = sales.open_account(OpenAccount(name="Acme", tier="smb", request_key="k1", caller=ANN))
    again, created_again = sales.open_account(OpenAccount(name="Acme", tier="smb", request_key="k1", caller=ANN))
    assert created and not created_again and again.id == first.id
    for_bob, created_for_bob = sales.open_account(OpenAccount(name="Acme", tier="smb", request_key="k1", caller=BOB))
    assert created_for_bob and for_bob.id != first.id
    with pytest.raises(Conflict, match="Idempotency-Key"):
        sales.open_account(OpenAccount(name="Acme", tier="enterprise", request_key="k1", caller=ANN))
    # A change since does not make the repeat a different request.
    sales.change_account(ChangeAccount(first.id, 1, {"name": "Acme Ltd"}, caller=ANN))
    assert sales.open_account(OpenAccount(name="Acme", tier="smb", request_key="k1", caller=ANN))[0].name == "Acme Ltd"
    contact, added = sales.add_contact(AddContact(first.id, "Ada", request_key="c1", caller=ANN))
    repeat, added_again = sales.add_contact(AddContact(first.id, "Ada", request_key="c1", caller=ANN))
    assert added and not added_again and repeat.id == contact.id


def test_a_rep_sees_and_changes_only_their_own_accounts(sales):
    anns = open_for(sales, ANN)
    with pytest.raises(NotFound, match=f"account {anns.id} does not exist"):
        sales.get_account(anns.id, BOB)
    with pytest.raises(NotFound):
        sales.change_account(ChangeAccount(anns.id, 1, {"name": "Mine now"}, caller=BOB))
    assert sales.get_account(anns.id, BOSS).owner_id == "ann"
    assert sales.get_account(anns.id).owner_id == "ann"  # internal calls see everything
    with pytest.raises(PermissionDenied):
        sales.change_account(ChangeAccount(anns.id, 1, {"owner_id": "bob"}, caller=ANN))
    moved = sales.change_account(ChangeAccount(anns.id, 1, {"owner_id": "bob"}, caller=BOSS))
    assert moved.owner_id == "bob" and moved.version == 2
    assert sales.get_account(anns.id, BOB).id == anns.id
    with pytest.raises(NotFound):
        sales.get_account(anns.id, ANN)


def test_changes_need_the_current_version(sales):
    account = open_for(sales, ANN)
    with pytest.raises(FailedPrecondition, match="needs the version"):
        sales.change_account(ChangeAccount(account.id, None, {"name": "X"}, caller=ANN))
    with pytest.raises(Conflict, match="is at version 1, not 3"):
        sales.change_account(ChangeAccount(account.id, 3, {"name": "X"}, caller=ANN))
    same = sales.change_account(ChangeAccount(account.id, 1, {"name": "Acme"}, caller=ANN))
    assert same.version == 1  # nothing changed, nothing recorded
    changed = sales.change_account(ChangeAccount(account.id, 1, {"name": "X", "region": "EMEA"}, caller=ANN))
    assert (changed.name, changed.region, changed.version) == ("X", "EMEA", 2)
    with pytest.raises(Conflict):
        sales.change_account(ChangeAccount(account.id, 1, {"name": "Y"}, caller=ANN))


def test_contacts_are_seen_through_their_account(sales):
    anns = open_for(sales, ANN)
    bobs = open_for(sales, BOB, name="Bobco")
    contact, _ = sales.add_contact(AddContact(anns.id, "Ada", "ada@example.com", "+1 202 555 0143", caller=ANN))
    assert contact.owner_id == "ann" and contact.phone == "+12025550143"
    with pytest.raises(InvalidField, match=f"account_id: account {bobs.id} does not exist"):
        sales.add_contact(AddContact(bobs.id, "Eve", caller=ANN))  # not hers to see
    with pytest.raises(InvalidField, match="does not exist"):
        sales.add_contact(AddContact("00000000-0000-0000-0000-000000000000", "Eve", caller=BOSS))
    with pytest.raises(NotFound, match=f"contact {contact.id} does not exist"):
        sales.get_contact(contact.id, BOB)
    with pytest.raises(InvalidField) as caught:  # moving it to an account she cannot see
        sales.change_contact(ChangeContact(contact.id, 1, {"account_id": bobs.id}, caller=ANN))
    assert caught.value.field == "account_id"
    # Reassigning the account moves its contacts with it.
    sales.change_account(ChangeAccount(anns.id, 1, {"owner_id": "bob"}, caller=BOSS))
    assert sales.get_contact(contact.id, BOB).owner_id == "bob"
    with pytest.raises(NotFound):
        sales.get_contact(contact.id, ANN)
    moved = sales.change_contact(ChangeContact(contact.id, 1, {"account_id": bobs.id, "email": None}, caller=BOB))
    assert (moved.account_id, moved.email, moved.version) == (bobs.id, None, 2)


def test_lists_page_through_filters_in_name_order(sales):
    names = ["delta", "Alpha", "charlie", "bravo", "Al_pha 2", "alpine", "Echo"]
    for i, name in enumerate(names):
        open_for(sales, ANN if i % 2 == 0 else BOB, name=name)
    seen, cursor = [], None
    while True:
        page = sales.list_accounts(ListRecords(limit=2, cursor=cursor, caller=BOSS))
        seen += [a.name for a in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == sorted(names, key=str.casefold)
    prefixed = sales.list_accounts(ListRecords(name_prefix="AL", caller=BOSS)).items
    assert [a.name for a in prefixed] == ["Al_pha 2", "Alpha", "alpine"]
    underscore = sales.list_accounts(ListRecords(name_prefix="al_", caller=BOSS)).items
    assert [a.name for a in underscore] == ["Al_pha 2"]  # _ is a character, not a wildcard
    assert {a.owner_id for a in sales.list_accounts(ListRecords(caller=ANN)).items} == {"ann"}
    assert [a.name for a in sales.list_accounts(ListRecords(owner_id="bob", caller=BOSS)).items] == \
        ["Alpha", "alpine", "bravo"]
    assert sales.list_accounts(ListRecords(owner_id="bob", caller=ANN)).items == []
    future = datetime.now(UTC) + timedelta(minutes=5)
    assert sales.list_accounts(ListRecords(updated_since=future, caller=BOSS)).items == []
    bravo = next(a for a in sales.list_accounts(ListRecords(caller=BOSS)).items if a.name == "bravo")
    changed = sales.change_account(ChangeAccount(bravo.id, 1, {"tier": "smb"}, caller=BOB))
    since = sales.list_accounts(ListRecords(updated_since=changed.updated_at, caller=BOSS)).items
    assert [a.name for a in since] == ["bravo"]


def test_contacts_list_by_account_and_by_the_accounts_owner(sales):
    anns, bobs = open_for(sales, ANN), open_for(sales, BOB, name="Bobco")
    for name in ("Zoe", "Ada", "Mia"):
        sales.add_contact(AddContact(anns.id, name, caller=ANN))
    sales.add_contact(AddContact(bobs.id, "Bea", caller=BOB))
    assert [c.name for c in sales.list_contacts(ListRecords(caller=ANN)).items] == ["Ada", "Mia", "Zoe"]
    assert [c.name for c in sales.list_contacts(ListRecords(account_id=bobs.id, caller=BOSS)).items] == ["Bea"]
    assert sales.list_contacts(ListRecords(account_id=bobs.id, caller=ANN)).items == []
    assert [c.name for c in sales.list_contacts(ListRecords(owner_id="bob", caller=BOSS)).items] == ["Bea"]
    first = sales.list_contacts(ListRecords(limit=2, caller=BOSS))
    assert [c.name for c in first.items] == ["Ada", "Bea"] and first.next_cursor
    rest = sales.list_contacts(ListRecords(limit=2, cursor=first.next_cursor, caller=BOSS))
    assert [c.name for c in rest.items] == ["Mia", "Zoe"] and rest.next_cursor is None


@pytest.mark.parametrize("request_,field", [
    (ListRecords(limit=0), "limit"),
    (ListRecords(limit=201), "limit"),
    (ListRecords(cursor="garbage"), "cursor"),
    (ListRecords(updated_since=datetime(2025, 1, 1)), "updated_since"),
    (ListRecords(owner_id="x" * 201), "owner_id"),
    (ListRecords(account_id="nope"), "account_id"),
])
def test_bad_list_requests_name_the_field(sales, request_, field):
    lister = sales.list_contacts if field == "account_id" else sales.list_accounts
    with pytest.raises(InvalidField) as caught:
        lister(request_)
    assert caught.value.field == field


def test_a_cursor_of_one_list_is_refused_by_the_other(sales):
    anns = open_for(sales, ANN)
    for name in ("A", "B"):
        open_for(sales, ANN, name=name)
        sales.add_contact(AddContact(anns.id, name, caller=ANN))
    cursor = sales.list_accounts(ListRecords(limit=1, caller=ANN)).next_cursor
    with pytest.raises(InvalidField, match="cursor"):
        sales.list_contacts(ListRecords(cursor=cursor, caller=ANN))


def test_the_index_follows_the_store_and_rebuilds_to_the_same_answer(sales):
    for i in range(7):
        open_for(sales, ANN, name=f"Account {i}")
    assert sales.views.position() == sales.recorder.max_notification_id()
    before = sales.list_accounts(ListRecords(caller=BOSS))
    assert sales.views.rebuild() == 7
    assert sales.list_accounts(ListRecords(caller=BOSS)) == before
