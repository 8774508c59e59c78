"""The records the leads service owns, and which role may do what with them (admin: all)."""

from crm_runtime.auth import ALL_ACTIONS, Action, Resource

LEADS = Resource("leads", {
    "sales_manager": ALL_ACTIONS,
    "sales_rep": {Action.VIEW, Action.CREATE, Action.EDIT},
    "service": {Action.VIEW, Action.ASSIGN},
})
