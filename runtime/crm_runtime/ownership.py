"""Record visibility, one rule for every get, list and command of every service.

A record has an owner. A role that sees all records (managers, admins, analysts, service
accounts) sees and changes every record it has the permission for; a `sales_rep` only the
records they own. A record the caller may not see is answered as missing, so its
existence does not leak.
"""

from __future__ import annotations

from typing import TypeVar

from crm_runtime.auth import Principal, current_principal
from crm_runtime.errors import NotFound

R = TypeVar("R")


def owner_filter(principal: Principal | None = None) -> str | None:
    """The owner a list must be narrowed to for this caller; None: every record.

    No principal means an internal call (a consumer or a tool), which sees everything.
    """
    principal = principal if principal is not None else current_principal()
    if principal is None or principal.sees_all_records:
        return None
    return principal.subject


def can_see(owner_id: str | None, principal: Principal | None = None) -> bool:
    only = owner_filter(principal)
    return only is None or owner_id == only


def check_visible(record: R, what: str, principal: Principal | None = None) -> R:
    """The record itself, or NotFound when the caller may not see it."""
    if not can_see(getattr(record, "owner_id", None), principal):
        raise NotFound(f"{what} {getattr(record, 'id', '')} does not exist")
    return record
