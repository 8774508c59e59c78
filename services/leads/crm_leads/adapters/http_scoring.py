"""HTTP adapter: /v1/scoring-rules, the active lead-scoring rule set.

`GET` shows the rule set, its `version` (0: the built-in defaults) and the progress of the
background rescoring of open leads; `PUT` replaces it (a body as GET answers it is taken
back: `version`, `rescoring` and the other shown keys are ignored) and answers the new
version with `leads_to_rescore`. The body is checked by crm_leads.scoring, which names the
bad part: `rules[2].when.field: 'budget' is not a known field; use one of: ...` (422).

The router's lifespan runs the rescorer (crm_leads.scoring_rules.Rescorer) in the API
process: it resumes from its stored position when the service starts.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

from crm_leads.application import LeadsApplication
from crm_leads.permissions import SCORING_RULES
from crm_leads.scoring_rules import ActiveRules, ReplaceScoringRules, Rescoring
from crm_runtime.auth import Principal, require
from crm_runtime.http import error_responses

EXAMPLE = {
    "rules": [
        {"id": "referral", "description": "Referred by a customer",
         "when": {"field": "channel", "op": "eq", "value": "referral"}, "points": 20},
        {"id": "big-company", "description": "200 people or more",
         "when": {"field": "company_size", "op": "gte", "value": 200}, "points": 10},
        {"id": "met", "description": "At least one meeting",
         "when": {"field": "activities.meeting", "op": "gte", "value": 1}, "points": 25},
    ],
    "grades": {"hot": 40, "warm": 20},
}


class GradesOut(BaseModel):
    hot: int
    warm: int


class RescoringOut(BaseModel):
    version: int = Field(description="The rule set being applied")
    rescored: int = Field(description="Open leads rescored so far")
    pending: int = Field(description="Open leads still to rescore")
    done: bool

    @classmethod
    def of(cls, progress: Rescoring) -> RescoringOut:
        return cls(**progress.to_dict())


class ScoringRulesOut(BaseModel):
    version: int = Field(description="0: the built-in defaults, never replaced")
    rules: list[dict[str, Any]] = Field(description='[{"id", "description", "when": {"field", "op", "value"}, '
                                                    '"points"}]')
    grades: GradesOut
    rescoring: RescoringOut
    leads_to_rescore: int | None = Field(default=None, description="PUT only: open leads that will be rescored")
    updated_by: str | None = None
    updated_at: datetime | None = None

    @classmethod
    def of(cls, active: ActiveRules, progress: Rescoring, leads_to_rescore: int | None = None) -> ScoringRulesOut:
        plain = active.rule_set.to_dict()
        return cls(version=active.version, rules=plain["rules"], grades=GradesOut(**plain["grades"]),
                   rescoring=RescoringOut.of(progress), leads_to_rescore=leads_to_rescore,
                   updated_by=active.updated_by, updated_at=active.updated_at)


RuleSetBody = Annotated[dict[str, Any], Body(
    description='{"rules": [{"id", "description", "when": {"field", "op", "value"}, "points"}], '
                '"grades": {"hot", "warm"}}; fields: channel, industry, company_size, title, country, '
                "email_domain, activities.<kind>; ops: eq, ne, in, gte, lte, contains, exists",
    openapi_examples={"rules": {"value": EXAMPLE}})]


def scoring_router(app: LeadsApplication) -> APIRouter:
    @asynccontextmanager
    async def lifespan(_api: Any):
        app.rescorer.start()  # picks up where it stopped: rescoring survives a restart
        try:
            yield
        finally:
            await asyncio.to_thread(app.rescorer.stop)

    api = APIRouter(prefix="/v1/scoring-rules", tags=["scoring"], lifespan=lifespan)

    @api.get("", response_model=ScoringRulesOut)
    async def get_scoring_rules(_caller: Principal = require(SCORING_RULES.view)):
        def read() -> ScoringRulesOut:
            active = app.active_rules()
            return ScoringRulesOut.of(active, app.rescoring_progress(active.version))

        return await asyncio.to_thread(read)

    @api.put("", response_model=ScoringRulesOut, responses=error_responses(409, 422))
    async def replace_scoring_rules(body: RuleSetBody, caller: Principal = require(SCORING_RULES.edit)):
        def replace() -> ScoringRulesOut:
            active, count = app.replace_scoring_rules(ReplaceScoringRules(rules=body, caller=caller))
            return ScoringRulesOut.of(active, app.rescoring_progress(active.version), count)

        return await asyncio.to_thread(replace)

    return api
