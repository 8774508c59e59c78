"""The records the workflow service owns, and which role may do what with them (admin: all)."""

from crm_runtime.auth import Action, Resource

ASSIGNMENTS = Resource("assignments", {
    "sales_manager": {Action.VIEW},
    "service": {Action.VIEW},
})
# Agents' profiles (groups, skills, capacity, shift) and their open work.
AGENTS = Resource("agents", {
    "agent": {Action.VIEW},
    "service": {Action.VIEW, Action.EDIT},
    "sales_manager": {Action.VIEW},
})
# Routing groups: strategy, members, queue.
ROUTING = Resource("routing", {
    "agent": {Action.VIEW},
    "service": {Action.VIEW, Action.EDIT},
    "sales_manager": {Action.VIEW},
})
# SLA timers of tickets.
TIMERS = Resource("timers", {
    "agent": {Action.VIEW},
    "service": {Action.VIEW},
    "sales_manager": {Action.VIEW},
    "analyst": {Action.VIEW},
})
