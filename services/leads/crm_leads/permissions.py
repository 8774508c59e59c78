"""The records the leads service owns, and which role may do what with them (admin: all).

What a role may do is one half; which records it may do it to is the other: a `sales_rep`
sees and works only the leads it owns (crm_runtime.ownership, applied by every get, list
and command in crm_leads.application). Campaigns are the marketing team's, owned by
nobody: whoever may view campaigns sees them all.
"""

from crm_runtime.auth import ALL_ACTIONS, Action, Resource

LEADS = Resource("leads", {
    "sales_manager": ALL_ACTIONS,
    "sales_rep": {Action.VIEW, Action.CREATE, Action.EDIT},
    "service": {Action.VIEW, Action.ASSIGN},
})

CAMPAIGNS = Resource("campaigns", {
    "sales_manager": ALL_ACTIONS,
    "sales_rep": {Action.VIEW},
    "service": {Action.VIEW},
    "analyst": {Action.VIEW, Action.EXPORT},
})

# The active lead-scoring rule set: managers (and admins) replace it; whoever views leads
# may read it, since every lead shows the reasons of its score.
SCORING_RULES = Resource("scoring_rules", {
    "sales_manager": ALL_ACTIONS,
    "sales_rep": {Action.VIEW},
    "service": {Action.VIEW},
})
