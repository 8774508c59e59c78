"""The command outbox: a stored decision is delivered to its service once the service
acknowledges it, in order per subject, after any restart, and never twice in effect."""

import asyncio
import socket

import pytest

import crm_workflow.context  # noqa: F401 - the workflow's declarations (its commands)
from crm_leads.adapters.grpc import registrations as leads_grpc
from crm_leads.application import CaptureLead, LeadsApplication
from crm_runtime import grpc_server
from crm_runtime.auth import ServiceAccount
from crm_runtime.commands import CommandClient, CommandDispatcher
from crm_runtime.settings import PlatformSettings
from crm_workflow.adapters.messages import COMMANDS
from crm_workflow.application import WorkflowApplication
from tests.conftest import TOKENS


def free_port() -> int:
    for port in range(21100, 21900):  # below the ephemeral range
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port")


async def serve_leads(app: LeadsApplication, port: int):
    server = grpc_server.build_server(f"127.0.0.1:{port}", leads_grpc(app), TOKENS)
    await server.start()
    return server


def dispatcher_for(workflow: WorkflowApplication, port: int) -> CommandDispatcher:
    client = CommandClient({"leads": f"127.0.0.1:{port}"}, ServiceAccount(TOKENS, "workflow"), timeout=2)
    return CommandDispatcher(workflow, COMMANDS, client, name="workflow", poll_interval=0.01)


async def run_until(dispatcher: CommandDispatcher, done, timeout: float = 30) -> None:
    task = asyncio.ensure_future(dispatcher.run())
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not await asyncio.to_thread(done):
            assert asyncio.get_running_loop().time() < deadline, "dispatcher did not finish"
            assert not task.done(), task.exception()
            await asyncio.sleep(0.05)
    finally:
        dispatcher.stop()
        await asyncio.wait_for(task, timeout=10)
        await dispatcher.client.close()


def test_decisions_are_delivered_once_across_restarts_and_while_the_target_is_down(tmp_path):
    leads = LeadsApplication(PlatformSettings(store="memory"))
    workflow = WorkflowApplication(PlatformSettings(data_dir=tmp_path), ["rep-a", "rep-b"])
    ids = [str(leads.capture_lead(CaptureLead(name=f"L{i}", email=f"l{i}@example.com", phone=None,
                                              company=None, channel="web"))[0].id) for i in range(30)]
    workflow.decide_lead_owners([(lead_id, f"evt-{lead_id}") for lead_id in ids[:20]])
    port = free_port()

    def assigned(count):
        return lambda: sum(leads.get_lead(i).owner_id is not None for i in ids) == count

    async def scenario():
        server = await serve_leads(leads, port)
        await run_until(dispatcher_for(workflow, port), assigned(20))
        # A restarted dispatcher starts from its stored position: nothing is sent twice.
        again = dispatcher_for(workflow, port)
        assert again.position() == workflow.recorder.max_notification_id()
        await server.stop(grace=None)
        # The target is down: the next decisions wait, retried, and are never passed.
        workflow.decide_lead_owners([(lead_id, f"evt-{lead_id}") for lead_id in ids[20:]])
        waiting = dispatcher_for(workflow, port)
        task = asyncio.ensure_future(waiting.run())
        await asyncio.sleep(1.5)
        assert waiting.position() < workflow.recorder.max_notification_id()
        assert not task.done()
        server = await serve_leads(leads, port)
        try:
            deadline = asyncio.get_running_loop().time() + 30
            while not assigned(30)():
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
        finally:
            waiting.stop()
            await asyncio.wait_for(task, timeout=10)
            await waiting.client.close()
            await server.stop(grace=None)

    asyncio.run(scenario())
    owners = [leads.get_lead(i).owner_id for i in ids]
    assert owners == [("rep-a", "rep-b")[n % 2] for n in range(30)]
    assert all(leads.get_lead(i).version == 2 for i in ids), "a lead was assigned twice"


def test_a_stop_during_retries_ends_promptly_without_advancing(tmp_path):
    workflow = WorkflowApplication(PlatformSettings(data_dir=tmp_path), ["rep-a"])
    workflow.decide_lead_owner("00000000-0000-0000-0000-000000000001", "evt-1")
    dispatcher = dispatcher_for(workflow, free_port())  # nobody listens there

    async def scenario():
        task = asyncio.ensure_future(dispatcher.run())
        await asyncio.sleep(1.0)
        dispatcher.stop()
        await asyncio.wait_for(task, timeout=5)
        await dispatcher.client.close()

    asyncio.run(scenario())
    assert dispatcher.position() == 0


@pytest.mark.parametrize("owner", ["", "x" * 500])
def test_a_command_the_target_keeps_refusing_is_logged_and_passed(tmp_path, owner):
    leads = LeadsApplication(PlatformSettings(store="memory"))
    lead, _ = leads.capture_lead(CaptureLead(name="L", email="l@example.com", phone=None,
                                             company=None, channel="web"))
    workflow = WorkflowApplication(PlatformSettings(data_dir=tmp_path), [owner or "rep-a"])
    workflow.decide_lead_owner(str(lead.id), "evt-1")
    if not owner:
        workflow.decide_lead_owner("not-a-lead-id", "evt-2")  # NOT_FOUND / INVALID_ARGUMENT
    port = free_port()

    async def scenario():
        server = await serve_leads(leads, port)
        dispatcher = dispatcher_for(workflow, port)
        dispatcher.max_rejections = 2
        try:
            await run_until(dispatcher, lambda: dispatcher.position() == workflow.recorder.max_notification_id())
        finally:
            await server.stop(grace=None)

    asyncio.run(scenario())
    assert leads.get_lead(lead.id).owner_id == (None if owner else "rep-a")


def _calls(method: str) -> float:
    from prometheus_client import REGISTRY
    return REGISTRY.get_sample_value("crm_dispatcher_calls_total",
                                     {"dispatcher": "workflow", "method": method}) or 0.0


SINGLE = "/crm.leads.v1.LeadsService/AssignLead"
BATCHED = "/crm.leads.v1.LeadsService/AssignLeads"


def test_decisions_of_one_kind_travel_together_in_calls_of_the_batched_form(tmp_path):
    leads = LeadsApplication(PlatformSettings(store="memory"))
    workflow = WorkflowApplication(PlatformSettings(data_dir=tmp_path), ["rep-a", "rep-b"])
    ids = [str(leads.capture_lead(CaptureLead(name=f"L{i}", email=f"l{i}@example.com", phone=None,
                                              company=None, channel="web"))[0].id) for i in range(40)]
    workflow.decide_lead_owners([(lead_id, f"evt-{lead_id}") for lead_id in ids])
    port = free_port()
    singles, batches = _calls(SINGLE), _calls(BATCHED)

    async def scenario():
        server = await serve_leads(leads, port)
        try:
            await run_until(dispatcher_for(workflow, port),
                            lambda: all(leads.get_lead(i).owner_id is not None for i in ids))
        finally:
            await server.stop(grace=None)

    asyncio.run(scenario())
    assert _calls(SINGLE) == singles, "a decision went alone although it had company"
    assert 1 <= _calls(BATCHED) - batches < 40
    assert [leads.get_lead(i).owner_id for i in ids] == [("rep-a", "rep-b")[n % 2] for n in range(40)]
    assert all(leads.get_lead(i).version == 2 for i in ids)


def test_a_target_without_the_batched_form_gets_one_call_per_command(tmp_path):
    """An older release of the target answers UNIMPLEMENTED: the dispatcher falls back."""
    import dataclasses

    from crm_runtime.commands import Batch

    leads = LeadsApplication(PlatformSettings(store="memory"))
    workflow = WorkflowApplication(PlatformSettings(data_dir=tmp_path), ["rep-a"])
    ids = [str(leads.capture_lead(CaptureLead(name=f"L{i}", email=f"l{i}@example.com", phone=None,
                                              company=None, channel="web"))[0].id) for i in range(3)]
    workflow.decide_lead_owners([(lead_id, f"evt-{lead_id}") for lead_id in ids])
    port = free_port()
    dispatcher = dispatcher_for(workflow, port)
    commands = dispatcher.commands_in(workflow.recorder.select_notifications(start=1, limit=100))
    assert len(commands) == 3 and all(command.batch is not None for command in commands)
    missing = Batch("/crm.leads.v1.LeadsService/AssignLeadsSomeDay", commands[0].batch.request_type,
                    commands[0].batch.response_type)
    commands = [dataclasses.replace(command, batch=missing) for command in commands]
    singles = _calls(SINGLE)

    async def scenario():
        server = await serve_leads(leads, port)
        try:
            [calls] = dispatcher.calls_for(commands)
            await asyncio.wait_for(dispatcher.deliver_all(calls), timeout=20)
        finally:
            await server.stop(grace=None)
            await dispatcher.client.close()

    asyncio.run(scenario())
    assert _calls(SINGLE) - singles == 3
    assert all(leads.get_lead(i).owner_id == "rep-a" for i in ids)


def test_on_postgres_an_idle_dispatcher_sleeps_until_a_decision_is_committed(postgres_platform):
    """No polling on PostgreSQL: caught up, the dispatcher waits for the store's commit
    notification (crm_runtime.commit_signal), and a decision stored then is delivered at
    once, long before its next look (30 s here)."""
    leads = LeadsApplication(PlatformSettings(store="memory"))
    workflow = WorkflowApplication(postgres_platform, ["rep-a"])
    ids = [str(leads.capture_lead(CaptureLead(name=f"L{i}", email=f"pg{i}@example.com", phone=None,
                                              company=None, channel="web"))[0].id) for i in range(3)]
    port = free_port()
    dispatcher = dispatcher_for(workflow, port)
    dispatcher.idle_look = 30.0
    assert dispatcher.commits.available
    reads = []
    select = workflow.recorder.select_notifications

    def counted(*args, **kwargs):
        reads.append(1)
        return select(*args, **kwargs)

    workflow.recorder.select_notifications = counted

    def owned(lead_id):
        return lambda: leads.get_lead(lead_id).owner_id == "rep-a"

    async def scenario():
        server = await serve_leads(leads, port)
        task = asyncio.ensure_future(dispatcher.run())
        try:
            for lead_id in ids:
                await asyncio.sleep(1.0)  # caught up and idle meanwhile
                looked = len(reads)
                await asyncio.to_thread(workflow.decide_lead_owner, lead_id, f"evt-{lead_id}")
                started = asyncio.get_running_loop().time()
                while not await asyncio.to_thread(owned(lead_id)):
                    assert asyncio.get_running_loop().time() - started < 5, "the commit did not wake it"
                    await asyncio.sleep(0.02)
                assert looked <= 6, f"{looked} reads of the log in a second idle: it polls"
                reads.clear()
        finally:
            dispatcher.stop()
            await asyncio.wait_for(task, timeout=10)
            await dispatcher.client.close()
            await server.stop(grace=None)

    asyncio.run(scenario())
    assert dispatcher.position() == workflow.recorder.max_notification_id()
