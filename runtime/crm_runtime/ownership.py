"""Record visibility, one rule for every get, list and command of every service.

A record has an owner, and may belong to a group and be assigned to someone (a ticket:
opened by, its group, its assignee). A role that sees all records (managers, admins,
analysts, service accounts) sees and changes every record it has the permission for; a
`sales_rep` only the records they own; an `agent` the records they own, those of the
groups their token names (the `groups` claim) and those assigned to them. A caller with
several roles sees what any of them sees. A record the caller may not see is answered as
missing, so its existence does not leak.

The rule is `scope` (who sees what), read by `can_see` and `check_visible` for one record
and by `scope_condition` for a list's query, so lists, gets and commands agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, or_

from crm_runtime.auth import Principal, current_principal
from crm_runtime.errors import NotFound

R = TypeVar("R")


@dataclass(frozen=True)
class Scope:
    """The records a caller who does not see all may see: those `subject` owns, and when
    `groups` is not None (a role that sees its groups' records) those of these groups and
    those assigned to `subject`."""

    subject: str
    groups: frozenset[str] | None = None


def scope(principal: Principal | None = None) -> Scope | None:
    """What this caller may see; None: every record.

    No principal means an internal call (a consumer or a tool), which sees everything.
    """
    principal = principal if principal is not None else current_principal()
    if principal is None or principal.sees_all_records:
        return None
    return Scope(principal.subject, principal.groups if principal.sees_group_records else None)


def owner_filter(principal: Principal | None = None) -> str | None:
    """The owner a list must be narrowed to for this caller; None: every record.

    For records that have neither group nor assignee (a lead, an account); a list of
    records that do narrows with `scope_condition`.
    """
    only = scope(principal)
    return None if only is None else only.subject


def can_see(owner_id: str | None, principal: Principal | None = None, *,
            group: str | None = None, assignee_id: str | None = None) -> bool:
    only = scope(principal)
    if only is None or owner_id == only.subject:
        return True
    if only.groups is None:
        return False
    return assignee_id == only.subject or (group is not None and group in only.groups)


def check_visible(record: R, what: str, principal: Principal | None = None) -> R:
    """The record itself, or NotFound when the caller may not see it (its `owner_id`, and
    its `group` and `assignee_id` when it has them)."""
    if not can_see(getattr(record, "owner_id", None), principal, group=getattr(record, "group", None),
                   assignee_id=getattr(record, "assignee_id", None)):
        raise NotFound(f"{what} {getattr(record, 'id', '')} does not exist")
    return record


def scope_condition(only: Scope | None, owner: Any, group: Any = None,
                    assignee: Any = None) -> ColumnElement[bool] | None:
    """The same rule as a query condition on a list's columns (None: no narrowing)."""
    if only is None:
        return None
    conditions: list[ColumnElement[bool]] = [owner == only.subject]
    if only.groups is not None:
        if assignee is not None:
            conditions.append(assignee == only.subject)
        if group is not None and only.groups:
            conditions.append(group.in_(sorted(only.groups)))
    return or_(*conditions)
