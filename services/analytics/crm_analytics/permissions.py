"""The records the analytics service owns, and which role may do what with them (admin: all)."""

from crm_runtime.auth import Action, Resource

REPORTS = Resource("reports", {
    "sales_manager": {Action.VIEW, Action.EXPORT},
    "analyst": {Action.VIEW, Action.EXPORT},
})
