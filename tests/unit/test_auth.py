import os
import subprocess
import sys
import time

import jwt
import pytest

import crm_analytics.permissions  # noqa: F401 - declares the reports resource the roles act on
import crm_leads.permissions  # noqa: F401 - declares the leads resource the roles act on
from crm_runtime.auth import ROLES, PermissionDenied, Principal, ServiceAccount, TokenCodec, Unauthenticated

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


def test_agents_see_their_groups_their_assigned_and_their_own_tickets_nothing_else():
    from types import SimpleNamespace

    from crm_runtime.errors import NotFound
    from crm_runtime.ownership import Scope, can_see, check_visible, owner_filter, scope

    agent = Principal("ann", frozenset({"agent"}), groups=frozenset({"support", "vip"}))
    lone = Principal("lou", frozenset({"agent"}))  # a token without groups
    rep = Principal("rep-1", frozenset({"sales_rep"}), groups=frozenset({"support"}))
    manager = Principal("boss", frozenset({"sales_manager", "agent"}))

    def ticket(group, assignee=None, owner="someone"):
        return SimpleNamespace(id="t-1", owner_id=owner, group=group, assignee_id=assignee)

    assert scope(agent) == Scope("ann", frozenset({"support", "vip"}))
    assert scope(rep) == Scope("rep-1", None)  # groups mean nothing to a role without the group rule
    assert scope(manager) is None and scope(None) is None  # any role that sees all: all
    assert owner_filter(agent) == "ann"
    assert check_visible(ticket("support"), "ticket", agent).group == "support"
    assert check_visible(ticket("billing", assignee="ann"), "ticket", agent).assignee_id == "ann"
    assert check_visible(ticket("billing", owner="ann"), "ticket", agent).owner_id == "ann"
    for hidden in (ticket("billing"), ticket(None), ticket("billing", assignee="bob")):
        with pytest.raises(NotFound, match="ticket t-1 does not exist"):
            check_visible(hidden, "ticket", agent)
    assert not can_see("x", lone, group="support") and can_see("x", lone, assignee_id="lou")
    assert not can_see("x", rep, group="support", assignee_id="rep-1")  # a rep: only what they own
    assert can_see("x", manager, group="billing")
    # records without a group or an assignee (a lead, an account): their owner only
    assert check_visible(SimpleNamespace(id="l-1", owner_id="ann"), "lead", agent).id == "l-1"


def test_the_list_condition_is_the_same_rule():
    from sqlalchemy import Column, MetaData, String, Table, create_engine, insert, select

    from crm_runtime.ownership import can_see, scope, scope_condition

    rows = Table("t", MetaData(), Column("id", String, primary_key=True), Column("owner", String),
                 Column("grp", String), Column("assignee", String))
    engine = create_engine("sqlite://")
    rows.metadata.create_all(engine)
    data = [{"id": f"{owner}-{grp}-{assignee}", "owner": owner, "grp": grp, "assignee": assignee}
            for owner in ("ann", "bob") for grp in ("support", "billing", None) for assignee in ("ann", "bob", None)]
    callers = [Principal("ann", frozenset({"agent"}), groups=frozenset({"support"})),
               Principal("ann", frozenset({"agent"})), Principal("ann", frozenset({"sales_rep"})),
               Principal("ann", frozenset({"sales_rep", "agent"}), groups=frozenset({"billing", "vip"})),
               Principal("ann", frozenset({"analyst"})), None]
    with engine.begin() as conn:
        conn.execute(insert(rows), data)
        for caller in callers:
            condition = scope_condition(scope(caller), rows.c.owner, rows.c.grp, rows.c.assignee)
            statement = select(rows.c.id) if condition is None else select(rows.c.id).where(condition)
            listed = set(conn.execute(statement).scalars())
            expected = {row["id"] for row in data
                        if can_see(row["owner"], caller, group=row["grp"], assignee_id=row["assignee"])}
            assert listed == expected, caller


def test_a_token_carries_the_callers_groups():
    principal = CODEC.verify(CODEC.issue("ann", ["agent"], groups=["support", "billing", "support"]))
    assert principal == Principal("ann", frozenset({"agent"}), groups=frozenset({"support", "billing"}))
    assert jwt.decode(CODEC.issue("ann", ["agent"], groups=["vip"]), options={"verify_signature": False}
                      )["groups"] == ["vip"]
    assert "groups" not in jwt.decode(CODEC.issue("bob", ["admin"]), options={"verify_signature": False})
    assert CODEC.verify(CODEC.issue("bob", ["agent"])).groups == frozenset()
    for bad in (["Support"], [""], ["two words"], [f"g{i}" for i in range(101)], ["x" * 65]):
        with pytest.raises(ValueError, match="groups"):
            CODEC.issue("ann", ["agent"], groups=bad)


@pytest.mark.parametrize("groups", ["support", [1], ["Support"], [["support"]], {"a": 1}, ["ok", None]])
def test_a_token_with_malformed_groups_is_refused(groups):
    now = _now()
    with pytest.raises(Unauthenticated, match="groups"):
        CODEC.verify(_signed({"sub": "ann", "roles": ["agent"], "groups": groups, "iss": "crm-platform",
                              "iat": now, "exp": now + 60}))


def _signed(claims: dict, secret: str = "unit-test-secret-long-enough-0123456789") -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def _now() -> int:
    return int(time.time())


@pytest.mark.parametrize("claims", [
    {"sub": "", "roles": ["admin"]},                       # empty subject
    {"sub": "   ", "roles": ["admin"]},                    # blank subject
    {"sub": 42, "roles": ["admin"]},                       # not a name
    {"roles": ["admin"]},                                  # no subject at all
], ids=["empty", "blank", "number", "missing"])
def test_a_token_needs_a_subject(claims):
    now = _now()
    with pytest.raises(Unauthenticated):
        CODEC.verify(_signed({"iss": "crm-platform", "iat": now, "exp": now + 60, **claims}))


def test_a_token_needs_an_issue_time_in_the_past():
    now = _now()
    with pytest.raises(Unauthenticated, match="iat"):
        CODEC.verify(_signed({"sub": "a", "roles": [], "iss": "crm-platform", "exp": now + 60}))
    with pytest.raises(Unauthenticated):
        CODEC.verify(_signed({"sub": "a", "roles": [], "iss": "crm-platform", "iat": now + 3600,
                              "exp": now + 7200}))


def test_token_lifetimes_are_capped():
    now = _now()
    century = _signed({"sub": "a", "roles": ["admin"], "iss": "crm-platform", "iat": now,
                       "exp": now + 100 * 365 * 86400})
    with pytest.raises(Unauthenticated, match="longer than 86400"):
        CODEC.verify(century)
    day = _signed({"sub": "a", "roles": ["admin"], "iss": "crm-platform", "iat": now, "exp": now + 86400})
    assert CODEC.verify(day).subject == "a"
    short = TokenCodec("unit-test-secret-long-enough-0123456789", max_ttl_seconds=600)
    with pytest.raises(Unauthenticated):
        short.verify(day)
    with pytest.raises(ValueError, match="at most 600"):
        short.issue("a", ["admin"], ttl_seconds=601)
    with pytest.raises(ValueError, match="subject"):
        short.issue(" ", ["admin"])


def test_service_accounts_stay_within_the_cap():
    assert ServiceAccount(CODEC, "workflow").ttl == 3600
    short = TokenCodec("unit-test-secret-long-enough-0123456789", max_ttl_seconds=600)
    account = ServiceAccount(short, "workflow")
    assert short.verify(account.token()).subject == "service:workflow" and account.ttl == 600


def test_the_token_command_respects_the_cap_and_carries_groups():
    def command(*args, **env):
        return subprocess.run([sys.executable, "-m", "crm_runtime.auth", "--subject", "alice",
                               "--roles", "sales_manager", *args],
                              env={**os.environ, "CRM_AUTH_SECRET": "c" * 40, **env},
                              capture_output=True, text=True, timeout=60)

    too_long = command("--ttl", str(100 * 365 * 86400))
    assert too_long.returncode == 2 and "CRM_AUTH_MAX_TOKEN_TTL_SECONDS" in too_long.stderr
    capped = command(CRM_AUTH_MAX_TOKEN_TTL_SECONDS="600")  # the 8-hour default shrinks to fit
    assert capped.returncode == 0, capped.stderr
    codec = TokenCodec("c" * 40, max_ttl_seconds=600)
    assert codec.verify(capped.stdout.strip()).subject == "alice"
    grouped = command("--groups", "support, billing", CRM_AUTH_MAX_TOKEN_TTL_SECONDS="600")
    assert codec.verify(grouped.stdout.strip()).groups == frozenset({"support", "billing"})
    refused = command("--groups", "Not A Group")
    assert refused.returncode == 2 and "groups must be" in refused.stderr


def test_a_verified_token_is_remembered_until_it_expires(monkeypatch):
    codec = TokenCodec("remembered-secret-0123456789-0123456789")
    token = codec.issue("rep-1", ["sales_rep"], ttl_seconds=60)
    first = codec.verify(token)
    assert codec.verify(token) is first  # the second check is a look-up
    later = time.time() + 60 + 31  # past exp and the leeway: the token is checked again
    monkeypatch.setattr(time, "time", lambda: later)
    checked = []

    def check_again(again: str):
        checked.append(again)
        raise Unauthenticated("invalid token: Signature has expired")

    monkeypatch.setattr(codec, "_verify", check_again)
    with pytest.raises(Unauthenticated, match="expired"):
        codec.verify(token)
    assert checked == [token] and token not in codec._verified
