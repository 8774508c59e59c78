"""Sales application: commands and queries over the sales event store (accounts, contacts).

Commands are small dataclasses that the HTTP and gRPC adapters both build. Each loads the
aggregate, checks the caller may see it (crm_runtime.ownership: a `sales_rep` sees the
accounts it owns and their contacts; a record it may not see is answered as missing), calls
the domain and saves the new events in one transaction. A stale expected version, or a
concurrent write to the same record, is a Conflict.

Lists are answered by the query model (crm_sales.views), which is caught up with the store
after every command, so a caller lists what it has just written.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from crm_runtime import logs
from crm_runtime.auth import Action, Principal, current_principal
from crm_runtime.errors import FailedPrecondition, InvalidField, NotFound
from crm_runtime.eventstore import ServiceApplication, caller_scoped, check_version, parse_id
from crm_runtime.ownership import can_see, check_visible, owner_filter
from crm_runtime.settings import PlatformSettings
from crm_sales.domain import (
    NAME_MAX,
    Account,
    Contact,
    DomainAccount,
    account_id_for,
    contact_id_for,
    plain_identifier,
    record_id,
    validate_account,
    validate_contact,
)
from crm_sales.permissions import ACCOUNTS
from crm_sales.views import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    AccountRecord,
    ContactRecord,
    ListQuery,
    Page,
    SalesViews,
    decode_cursor,
    open_views,
)

log = logs.get(__name__)


@dataclass(frozen=True)
class OpenAccount:
    name: Any
    domain: Any = None
    industry: Any = None
    region: Any = None
    tier: Any = None
    owner_id: Any = None  # None or empty: the caller
    # The caller's Idempotency-Key (HTTP) or request_id (gRPC).
    request_key: str | None = None
    # Who asks; None: the principal bound to this call (none: an internal call).
    caller: Principal | None = None


@dataclass(frozen=True)
class ChangeAccount:
    account_id: str | UUID
    # Required: the version the caller read (HTTP If-Match, gRPC expected_version).
    expected_version: int | None
    # Only the fields to change; None clears an optional field.
    changes: Mapping[str, Any] = field(default_factory=dict)
    caller: Principal | None = None


@dataclass(frozen=True)
class AddContact:
    account_id: Any
    name: Any
    email: Any = None
    phone: Any = None
    request_key: str | None = None
    caller: Principal | None = None


@dataclass(frozen=True)
class ChangeContact:
    contact_id: str | UUID
    expected_version: int | None
    changes: Mapping[str, Any] = field(default_factory=dict)
    caller: Principal | None = None


@dataclass(frozen=True)
class ListRecords:
    """A page of accounts or contacts (account_id: contacts only)."""

    limit: int | None = None
    cursor: str | None = None
    owner_id: str | None = None
    name_prefix: str | None = None
    updated_since: datetime | None = None
    account_id: str | None = None
    caller: Principal | None = None


def _who(caller: Principal | None) -> Principal | None:
    return caller if caller is not None else current_principal()


def _subject(who: Principal | None) -> str:
    return who.subject if who is not None else ""


def _require_version(expected: int | None, what: str) -> int:
    if expected is None:
        raise FailedPrecondition(f"changing a {what} needs the version it was read at "
                                 f"(HTTP If-Match, gRPC expected_version)")
    if expected < 1:
        raise InvalidField("expected_version", "versions start at 1")
    return expected


def _check_owner(who: Principal | None, owner_id: str) -> None:
    """Giving an account to anyone but yourself is assigning it."""
    if who is not None and owner_id != who.subject:
        who.check(ACCOUNTS.name, Action.ASSIGN)


class SalesApplication(ServiceApplication):
    name = "Sales"

    def __init__(self, platform: PlatformSettings, default_phone_region: str = "US"):
        super().__init__(platform)
        self.default_phone_region = default_phone_region
        self._views: SalesViews | None = None
        self._views_opening = threading.Lock()

    @property
    def views(self) -> SalesViews:
        """The query model; opened when first used (only the API process uses it)."""
        if self._views is None:
            with self._views_opening:
                if self._views is None:
                    self._views = open_views(self, self.platform)
        return self._views

    def catch_up_views(self) -> int:
        return self.views.catch_up()

    def _refresh_views(self) -> None:
        # The command is committed whatever happens here; the next list catches up again.
        try:
            self.views.catch_up()
        except Exception as exc:  # noqa: BLE001
            log.exception("views.catch_up_failed", error=repr(exc))

    # -- accounts -------------------------------------------------------------------------

    def open_account(self, command: OpenAccount) -> tuple[AccountRecord, bool]:
        """Opens an account; returns (account, created). A repeated request key returns the first."""
        who = _who(command.caller)
        owner = command.owner_id if command.owner_id not in (None, "") else (who.subject if who else None)
        details = validate_account(command.name, owner, command.domain, command.industry,
                                   command.region, command.tier)
        _check_owner(who, details.owner_id)
        key = caller_scoped(who.subject if who else None, command.request_key)
        account, created = self.create_once(
            Account.open(details, account_id_for(key), opened_by=_subject(who)),
            same=lambda first: first.same_opening(details))
        if created:
            log.info("account.opened", account_id=str(account.id), owner_id=account.owner_id)
            self._refresh_views()
        else:
            check_visible(account, "account", who)
        return AccountRecord.of(account), created

    def _visible_account(self, account_id: str | UUID, who: Principal | None) -> Account:
        return check_visible(self.get(Account, account_id, "account"), "account", who)

    def get_account(self, account_id: str | UUID, caller: Principal | None = None) -> AccountRecord:
        return AccountRecord.of(self._visible_account(account_id, _who(caller)))

    def change_account(self, command: ChangeAccount) -> AccountRecord:
        who = _who(command.caller)
        expected = _require_version(command.expected_version, "account")
        account = self._visible_account(command.account_id, who)
        check_version(account, expected)
        differences = account.differences(command.changes)
        if "owner_id" in differences:
            _check_owner(who, differences["owner_id"])
        changed = account.change(command.changes, changed_by=_subject(who))
        if changed:
            self.save_changes(account)
            log.info("account.changed", account_id=str(account.id), changed=changed)
            self._refresh_views()
        return AccountRecord.of(account)

    def list_accounts(self, request: ListRecords) -> Page[AccountRecord]:
        query = self._query(request, "account")
        self.views.catch_up()
        return self.views.list_accounts(query, owner_filter(_who(request.caller)))

    # -- contacts -------------------------------------------------------------------------

    def _account_of_contact(self, account_id: str, who: Principal | None) -> Account:
        """The account a contact is added to or moved to: it must exist and be the caller's to see."""
        account = self.find(Account, parse_id("account_id", account_id))
        if account is None or not can_see(account.owner_id, who):
            raise InvalidField("account_id", f"account {account_id} does not exist")
        return account

    def _visible_contact(self, contact_id: str | UUID, who: Principal | None) -> tuple[Contact, Account]:
        contact = self.get(Contact, contact_id, "contact")
        account = self.find(Account, UUID(contact.account_id))
        if account is None or not can_see(account.owner_id, who):
            raise NotFound(f"contact {contact_id} does not exist")
        return contact, account

    def add_contact(self, command: AddContact) -> tuple[ContactRecord, bool]:
        """Adds a contact to an account; returns (contact, created)."""
        who = _who(command.caller)
        details = validate_contact(command.account_id, command.name, command.email, command.phone,
                                   self.default_phone_region)
        account = self._account_of_contact(details.account_id, who)
        key = caller_scoped(who.subject if who else None, command.request_key)
        contact, created = self.create_once(
            Contact.add(details, contact_id_for(key), added_by=_subject(who)),
            same=lambda first: first.same_addition(details))
        if created:
            log.info("contact.added", contact_id=str(contact.id), account_id=contact.account_id)
            self._refresh_views()
        else:
            contact, account = self._visible_contact(contact.id, who)
        return ContactRecord.of(contact, account.owner_id), created

    def get_contact(self, contact_id: str | UUID, caller: Principal | None = None) -> ContactRecord:
        contact, account = self._visible_contact(contact_id, _who(caller))
        return ContactRecord.of(contact, account.owner_id)

    def change_contact(self, command: ChangeContact) -> ContactRecord:
        who = _who(command.caller)
        expected = _require_version(command.expected_version, "contact")
        contact, account = self._visible_contact(command.contact_id, who)
        check_version(contact, expected)
        differences = contact.differences(command.changes, self.default_phone_region)
        if "account_id" in differences:
            account = self._account_of_contact(differences["account_id"], who)
        changed = contact.change(command.changes, changed_by=_subject(who),
                                 default_region=self.default_phone_region)
        if changed:
            self.save_changes(contact)
            log.info("contact.changed", contact_id=str(contact.id), changed=changed)
            self._refresh_views()
        return ContactRecord.of(contact, account.owner_id)

    def list_contacts(self, request: ListRecords) -> Page[ContactRecord]:
        query = self._query(request, "contact")
        self.views.catch_up()
        return self.views.list_contacts(query, owner_filter(_who(request.caller)))

    # -- lead conversion --------------------------------------------------------------------

    def conversion_lookups(self) -> ConversionLookups:
        """What a conversion plan (crm_sales.conversion) reads: this store, and the query
        model caught up with it now (so accounts opened until now are found by domain)."""
        self.views.catch_up()
        return ConversionLookups(self)

    # -- list requests ----------------------------------------------------------------------

    @staticmethod
    def _query(request: ListRecords, kind: str) -> ListQuery:
        limit = DEFAULT_LIMIT if request.limit is None else request.limit
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidField("limit", f"must be between 1 and {MAX_LIMIT}")
        prefix = request.name_prefix or None
        if prefix is not None and (len(prefix) > NAME_MAX or not prefix.isprintable()):
            raise InvalidField("name_prefix", f"must be at most {NAME_MAX} printable characters")
        since = request.updated_since
        if since is not None and since.utcoffset() is None:
            raise InvalidField("updated_since", "needs a time zone offset (RFC 3339), e.g. 2025-01-31T09:00:00Z")
        if request.account_id and kind != "contact":
            raise InvalidField("account_id", "filters contacts only")
        return ListQuery(
            limit=limit,
            after=decode_cursor(kind, request.cursor) if request.cursor else None,
            owner_id=plain_identifier("owner_id", request.owner_id) if request.owner_id else None,
            name_prefix=prefix,
            updated_since=since,
            account_id=record_id("account_id", request.account_id) if request.account_id else None)


class ConversionLookups:
    """`crm_sales.conversion.Lookups` over the sales store and its query model. An id that
    names a record of another kind is refused: the conversion could never be saved."""

    def __init__(self, app: SalesApplication):
        self.app = app

    def _find(self, cls: type, aggregate_id: UUID, field_name: str) -> Any:
        from eventsourcing.application import AggregateNotFoundError

        try:
            aggregate: Any = self.app.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        if not isinstance(aggregate, cls):
            raise InvalidField(field_name, f"{aggregate_id} names a record that is not a {cls.__name__.lower()}")
        return aggregate

    def account(self, account_id: UUID) -> Account | None:
        return self._find(Account, account_id, "account_id")  # type: ignore[no-any-return]

    def contact(self, contact_id: UUID) -> Contact | None:
        return self._find(Contact, contact_id, "contact_id")  # type: ignore[no-any-return]

    def domain_account(self, domain: str) -> DomainAccount | None:
        return self.app.find(DomainAccount, DomainAccount.id_for(domain))

    def account_with_domain(self, domain: str) -> UUID | None:
        found = self.app.views.account_with_domain(domain)
        return UUID(found) if found is not None else None
