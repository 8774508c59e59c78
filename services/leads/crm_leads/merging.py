"""De-duplication at the door, the duplicates of a lead, and merging two leads.

At the door. Every capture (HTTP and gRPC through `LeadsApplication.capture_lead`, and
each batch of a CSV import, crm_leads.importer) asks the query model for the OPEN leads
(new, contacted or qualified: `OPEN_STATUSES`) whose normalised email (case-folded) or
E.164 phone equals the new lead's. A disqualified, converted or merged lead is not a
duplicate: someone coming back after a disqualification is worked afresh, and a converted
lead is a customer now. When there are matches the lead is still captured, and marked
`duplicate_of` the earliest of them (by capture order) with what matched (`email` first,
else `phone`): `LeadDuplicateDetected`, saved in the same transaction as its capture. In
an import batch, a row also matches the earlier rows of its batch (one look-up per batch).

How race-safe that is. The index is caught up with the store before the look-up, so it
sees every lead committed before the capture began. Within one API process, captures that
share an email or phone take a lock (striped by the normalised contact point) around the
look-up and the save, so of two concurrent captures of the same email the second sees the
first; captures that arrive together are looked up and saved as one batch, in arrival
order (LeadsApplication.capture_lead), so the later sees the earlier there too. What
remains: two PROCESSES (two API instances, or the API and an importer run from the command
line) capturing the same email or phone within the same few milliseconds can both miss
each other, and neither is marked. `GET /v1/leads/{id}/duplicates` still lists the other
(it asks at read time), so a reviewer finds them.

Merge. `merge_leads` merges the duplicate into the lead named in the path (the survivor):
the domain's rules (`crm_leads.domain.check_merge`, `merge_gains`) decide, both leads
record their event, and both are saved in ONE transaction. The visibility rule applies to
both: a rep merges only leads they own (another's lead is answered as missing).
"""

from __future__ import annotations

import functools
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy import bindparam, literal_column, select, union_all

from crm_leads.domain import OPEN_STATUSES, Lead, email_key
from crm_leads.views import LeadRecord
from crm_leads.views import leads as lead_index
from crm_runtime import logs
from crm_runtime.auth import Principal, current_principal
from crm_runtime.errors import InvalidField
from crm_runtime.eventstore import check_version, parse_id
from crm_runtime.index import MAX_LIMIT
from crm_runtime.ownership import can_see, check_visible

if TYPE_CHECKING:
    from crm_leads.application import LeadsApplication

log = logs.get(__name__)

_STRIPES = 64
_LOCKS = tuple(threading.Lock() for _ in range(_STRIPES))


def _points(lead: Lead) -> list[str]:
    return [f"email:{email_key(lead.email)}"] + ([f"phone:{lead.phone}"] if lead.phone else [])


_POINT_COLUMNS = {"email": "email_key", "phone": "phone"}  # a point's kind -> its index column


@contextmanager
def contact_point_guard(*leads: Lead) -> Iterator[None]:
    """Holds the locks of the leads' emails and phones (in a fixed order: no deadlock), so
    that captures sharing one take turns between their look-up and their save."""
    stripes = sorted({hash(point) % _STRIPES for lead in leads for point in _points(lead)})
    with ExitStack() as held:
        for stripe in stripes:
            held.enter_context(_LOCKS[stripe])
        yield


_UNION_CHUNK = 100  # contact points per look-up statement


@functools.lru_cache(maxsize=512)
def _earliest_query(columns: tuple[str, ...]) -> Any:
    """For each contact point n (its column `columns[n]`, its value bound as `p<n>`): its
    earliest open leads, at most `k<n>`, as rows (n, id, seq). One statement for the
    batch's points, each point its own small query walking the (point, seq) index, so that
    a phone number a thousand leads share (a switchboard) costs what a new one does; a
    round trip per point was what a batch spent most on against PostgreSQL. Built once per
    sequence of columns."""
    c = lead_index.c
    open_: Any = bindparam("open", expanding=True)
    firsts = [select(literal_column(str(n)).label("n"), c.id, c.seq)
              .where(c[column] == bindparam(f"p{n}"), c.status.in_(open_))
              .order_by(c.seq).limit(bindparam(f"k{n}")).subquery(f"point{n}")
              for n, column in enumerate(columns)]
    return union_all(*(select(first) for first in firsts))


def flag_duplicates(app: LeadsApplication, leads: Sequence[Lead]) -> int:
    """Marks each lead about to be captured (in capture order) that shares its email or phone
    with an open lead, stored or earlier in `leads`, as a duplicate of the earliest such
    lead; returns how many it marked. Catches the index up first; then one statement
    looks up every email and phone of the batch (see `_earliest_query`)."""
    if not leads:
        return 0
    app.views.catch_up()
    ids = {str(lead.id) for lead in leads}
    # A lead of the batch may be stored already (captured again with its request key): a
    # point's look-up reads one lead more than the batch has with it, and skips the batch's.
    sharing = Counter(point for lead in leads for point in _points(lead))
    first_by: dict[str, str] = {}  # contact point -> the earliest open lead with it
    rank: dict[str, int] = {}  # lead id -> capture order (stored ones by seq, then this batch)
    earliest_rows: list[tuple[int, str, str]] = []  # (seq, lead id, contact point)
    wanted = sorted(sharing)  # every email and phone of the batch, once
    open_statuses = sorted(status.value for status in OPEN_STATUSES)
    with app.views.read() as conn:
        for start in range(0, len(wanted), _UNION_CHUNK):
            chunk = wanted[start:start + _UNION_CHUNK]
            parameters: dict[str, Any] = {"open": open_statuses}
            columns = []
            for n, point in enumerate(chunk):
                kind, parameters[f"p{n}"] = point.split(":", 1)
                parameters[f"k{n}"] = 1 + sharing[point]
                columns.append(_POINT_COLUMNS[kind])
            for n, lead_id, seq in conn.execute(_earliest_query(tuple(columns)), parameters):
                if lead_id not in ids:
                    earliest_rows.append((seq, lead_id, chunk[int(n)]))
    for _, lead_id, point in sorted(earliest_rows):
        rank.setdefault(lead_id, len(rank))
        first_by.setdefault(point, lead_id)
    marked = 0
    for lead in leads:
        points = _points(lead)
        found = [(first_by[point], point.split(":", 1)[0]) for point in points
                 if first_by.get(point, str(lead.id)) != str(lead.id)]  # not its own twin (one key twice)
        if found:  # the earliest lead; email before phone when it matched on both
            earliest, matched_on = min(found, key=lambda match: rank[match[0]])
            lead.mark_duplicate(earliest, matched_on)
            marked += 1
        rank[str(lead.id)] = len(rank)
        for point in points:
            first_by.setdefault(point, str(lead.id))
    return marked


def list_duplicates(app: LeadsApplication, lead_id: str | UUID,
                    caller: Principal | None = None) -> list[LeadRecord]:
    """The open leads (other than this one) sharing its email or phone, earliest first, at
    most MAX_LIMIT; a rep sees only their own among them."""
    who = caller if caller is not None else current_principal()
    lead = check_visible(app.get(Lead, lead_id, "lead"), "lead", who)
    matches = app.open_leads_matching(lead.email, lead.phone or None, exclude=str(lead.id))
    return [match for match in matches if can_see(match.owner_id, who)][:MAX_LIMIT]


@dataclass(frozen=True)
class MergeLeads:
    """Merge `duplicate_id` into `lead_id` (the survivor)."""

    lead_id: str | UUID
    duplicate_id: Any
    # Optional: the survivor's version the caller read (If-Match); stale is a Conflict.
    expected_version: int | None = None
    caller: Principal | None = None


def merge_leads(app: LeadsApplication, command: MergeLeads) -> tuple[Lead, Lead]:
    """Merges; returns (survivor, merged). Merging a lead into itself, or a merged or
    converted lead (either side), is a FailedPrecondition; nothing is saved then."""
    who = command.caller if command.caller is not None else current_principal()
    raw = command.duplicate_id
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise InvalidField("duplicate_id", "is required: the id of the lead to merge into this one")
    duplicate_id = parse_id("duplicate_id", raw.strip() if isinstance(raw, str) else raw)
    if command.expected_version is not None and command.expected_version < 1:
        raise InvalidField("expected_version", "versions start at 1")
    survivor = check_visible(app.get(Lead, command.lead_id, "lead"), "lead", who)
    check_version(survivor, command.expected_version)
    duplicate = survivor if duplicate_id == survivor.id else check_visible(
        app.get(Lead, duplicate_id, "lead"), "lead", who)
    gains = survivor.merge(duplicate, by=who.subject if who is not None else "")
    app.score_changes(survivor)  # its fields and activities changed: its score may move
    app.save_changes(survivor, duplicate)  # one transaction: both or neither
    log.info("lead.merged", lead_id=str(survivor.id), merged_lead_id=str(duplicate.id),
             fields=list(gains.fields), activities=len(gains.activities))
    app._refresh_views()
    return survivor, duplicate
