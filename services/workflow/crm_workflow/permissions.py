"""The records the workflow service owns, and which role may do what with them (admin: all)."""

from crm_runtime.auth import Action, Resource

ASSIGNMENTS = Resource("assignments", {
    "sales_manager": {Action.VIEW},
    "service": {Action.VIEW},
})
