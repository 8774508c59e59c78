import pytest

import crm_leads.permissions  # noqa: F401 - declares the leads resource the roles act on
import crm_analytics.permissions  # noqa: F401
from crm_runtime.auth import ROLES, PermissionDenied, Principal, TokenCodec, Unauthenticated

CODEC = TokenCodec("unit-test-secret-long-enough-0123456789")


def test_token_round_trip_carries_subject_and_roles():
    principal = CODEC.verify(CODEC.issue("alice", ["sales_rep", "analyst"]))
    assert principal == Principal("alice", frozenset({"sales_rep", "analyst"}))


@pytest.mark.parametrize("token", [None, "", "not.a.jwt",
                                   TokenCodec("some-other-secret-long-enough-000000").issue("m", ["admin"]),
                                   CODEC.issue("late", ["admin"], ttl_seconds=-60)])
def test_missing_forged_or_expired_tokens_are_refused(token):
    with pytest.raises(Unauthenticated):
        CODEC.verify(token)


def test_roles_grant_permissions_and_nothing_more():
    rep = Principal("r", frozenset({"sales_rep"}))
    assert rep.can("leads", "create") and rep.can("leads", "view")
    assert not rep.can("leads", "assign") and not rep.can("reports", "view")
    assert Principal("m", frozenset({"sales_manager"})).can("leads", "delete")
    assert Principal("a", frozenset({"admin"})).can("anything", "export")
    assert not Principal("n", frozenset()).can("leads", "view")
    assert not Principal("x", frozenset({"unknown-role"})).can("leads", "view")
    with pytest.raises(PermissionDenied, match="r may not assign leads"):
        rep.check("leads", "assign")


def test_issuing_refuses_unknown_roles_and_short_secrets():
    with pytest.raises(ValueError):
        CODEC.issue("x", ["root"])
    with pytest.raises(ValueError):
        TokenCodec("short")
    assert set(ROLES) >= {"admin", "sales_rep", "service"}


def test_one_visibility_rule_reps_see_their_own_records_managers_see_all():
    from types import SimpleNamespace

    from crm_runtime.errors import NotFound
    from crm_runtime.ownership import can_see, check_visible, owner_filter

    rep = Principal("rep-1", frozenset({"sales_rep"}))
    manager = Principal("boss", frozenset({"sales_manager"}))
    record = SimpleNamespace(id="acc-1", owner_id="rep-2")
    assert owner_filter(rep) == "rep-1" and owner_filter(manager) is None
    assert not can_see("rep-2", rep) and can_see("rep-1", rep) and can_see("rep-2", manager)
    assert check_visible(record, "account", manager) is record
    with pytest.raises(NotFound, match="account acc-1"):
        check_visible(record, "account", rep)
    assert owner_filter(None) is None  # internal calls (consumers, tools) see everything
