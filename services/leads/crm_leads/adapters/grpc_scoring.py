"""gRPC adapter for scoring: GetScoringRules and ReplaceScoringRules of crm.leads.v1.LeadsService,
with the semantics of /v1/scoring-rules (a bad rule set is INVALID_ARGUMENT naming its part).
Mixed into LeadsServicer (crm_leads.adapters.grpc)."""

from __future__ import annotations

import asyncio
from typing import Any

from google.protobuf import json_format, struct_pb2

from crm.leads.v1 import leads_pb2
from crm_leads.application import LeadsApplication
from crm_leads.permissions import SCORING_RULES
from crm_leads.scoring_rules import ActiveRules, ReplaceScoringRules, Rescoring
from crm_runtime.auth import current_principal
from crm_runtime.cloudevents import timestamp
from crm_runtime.grpc_server import rpc


def rule_set_of(request: leads_pb2.ReplaceScoringRulesRequest) -> dict[str, Any]:
    """The request as crm_leads.scoring's plain dict (checked there, naming the bad part)."""
    rules = []
    for rule in request.rules:
        when: dict[str, Any] = {"field": rule.when.field, "op": rule.when.op}
        if rule.when.HasField("value"):
            when["value"] = json_format.MessageToDict(rule.when.value)
        rules.append({"id": rule.id, "description": rule.description, "when": when, "points": rule.points})
    return {"rules": rules, "grades": {"hot": request.grades.hot, "warm": request.grades.warm}}


def rules_message(active: ActiveRules, progress: Rescoring, leads_to_rescore: int = 0) -> leads_pb2.ScoringRules:
    plain = active.rule_set.to_dict()
    message = leads_pb2.ScoringRules(
        version=active.version, grades=leads_pb2.ScoringGrades(**plain["grades"]),
        rescoring=leads_pb2.Rescoring(**progress.to_dict()), leads_to_rescore=leads_to_rescore,
        updated_by=active.updated_by or "")
    for rule in plain["rules"]:
        value = struct_pb2.Value()
        json_format.ParseDict(rule["when"]["value"], value)
        message.rules.append(leads_pb2.ScoringRule(
            id=rule["id"], description=rule["description"], points=rule["points"],
            when=leads_pb2.ScoringCondition(field=rule["when"]["field"], op=rule["when"]["op"], value=value)))
    if active.updated_at is not None:
        message.updated_at.CopyFrom(timestamp(active.updated_at))
    return message


class ScoringServicer:
    app: LeadsApplication

    @rpc(SCORING_RULES.view)
    async def GetScoringRules(self, request, context):
        def read() -> leads_pb2.ScoringRules:
            active = self.app.active_rules()
            return rules_message(active, self.app.rescoring_progress(active.version))

        return await asyncio.to_thread(read)

    @rpc(SCORING_RULES.edit)
    async def ReplaceScoringRules(self, request, context):
        command = ReplaceScoringRules(rules=rule_set_of(request), caller=current_principal())

        def replace() -> leads_pb2.ScoringRules:
            active, count = self.app.replace_scoring_rules(command)
            return rules_message(active, self.app.rescoring_progress(active.version), count)

        return await asyncio.to_thread(replace)
