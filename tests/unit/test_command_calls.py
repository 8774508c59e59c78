"""How the dispatcher cuts the commands it read into calls: runs of one batched form
together (up to a cap), anything else alone, order kept."""

import pytest

from crm.leads.v1 import leads_pb2
from crm.servicedesk.v1 import servicedesk_pb2
from crm_runtime.auth import ServiceAccount, TokenCodec
from crm_runtime.commands import Command, CommandClient, CommandDispatcher, CommandMap
from crm_runtime.settings import PlatformSettings
from crm_workflow.application import WorkflowApplication

LEADS = leads_pb2.DESCRIPTOR.services_by_name["LeadsService"]
DESK = servicedesk_pb2.DESCRIPTOR.services_by_name["ServiceDeskService"]


def assign(n: int, batched: bool = True) -> Command:
    return Command.to("leads", LEADS, "AssignLead", leads_pb2.AssignLeadRequest(lead_id=f"lead-{n}"),
                      idempotency_key=f"k{n}", ordering_key=f"lead-{n}",
                      batch_method="AssignLeads" if batched else None)


def other(n: int) -> Command:
    return Command.to("leads", LEADS, "GetLead", leads_pb2.GetLeadRequest(lead_id=f"lead-{n}"),
                      idempotency_key=f"g{n}", ordering_key=f"lead-{n}")


@pytest.fixture()
def dispatcher(tmp_path) -> CommandDispatcher:
    client = CommandClient({}, ServiceAccount(TokenCodec("t" * 40), "workflow"), timeout=1)
    app = WorkflowApplication(PlatformSettings(data_dir=tmp_path), ["rep-a"])
    return CommandDispatcher(app, CommandMap(), client, name="test", max_commands_per_call=3)


def test_runs_of_one_batched_form_share_a_call_up_to_the_cap_in_order(dispatcher):
    commands = [assign(1), assign(2), other(3), assign(4), assign(5), assign(6), assign(7), assign(8, batched=False)]
    calls = dispatcher.calls_for(commands)
    assert [[c.idempotency_key for c in call] for call in calls] == \
        [["k1", "k2"], ["g3"], ["k4", "k5", "k6"], ["k7"], ["k8"]]
    assert [c for call in calls for c in call] == commands


def test_a_batched_form_must_have_the_shape_of_one():
    with pytest.raises(TypeError, match="batched form"):
        Command.to("leads", LEADS, "AssignLead", leads_pb2.AssignLeadRequest(), idempotency_key="k",
                   ordering_key="k", batch_method="ListLeads")
    with pytest.raises(TypeError, match="batched form"):  # the requests of another command
        Command.to("service-desk", DESK, "AssignTicket", servicedesk_pb2.AssignTicketRequest(),
                   idempotency_key="k", ordering_key="k", batch_method="ListTickets")
