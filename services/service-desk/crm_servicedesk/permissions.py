"""The records the service desk owns, and which role may do what with them (admin: all).

- `agent` (a service-desk agent) works tickets: views every ticket, opens them, changes
  their status and priority and comments on them. Tokens carry no groups, so an agent sees
  every ticket and narrows lists with `group=`; the first public comment by a caller with
  the `agent` (or `admin`) role is a ticket's first response.
- `service` (service accounts: the workflow, an email or chat gateway) does what agents do
  and also `tickets:assign`: AssignTicket and EscalateTicket, and commenting for another
  author (a gateway relaying the customer's message).
- `sales_rep` opens tickets for their customers and sees the tickets they opened
  (crm_runtime.ownership: a ticket's owner is the subject who opened it).
- `sales_manager` and `analyst` view tickets; analysts also export.

Calendars and SLA policies are defined by admins and read by everyone who works tickets.
"""

from crm_runtime.auth import Action, Resource

TICKETS = Resource("tickets", {
    "agent": {Action.VIEW, Action.CREATE, Action.EDIT},
    "service": {Action.VIEW, Action.CREATE, Action.EDIT, Action.ASSIGN},
    "sales_rep": {Action.VIEW, Action.CREATE},
    "sales_manager": {Action.VIEW},
    "analyst": {Action.VIEW, Action.EXPORT},
})

SLA_POLICIES = Resource("sla_policies", {
    "agent": {Action.VIEW},
    "service": {Action.VIEW},
    "sales_manager": {Action.VIEW},
    "analyst": {Action.VIEW, Action.EXPORT},
})

CALENDARS = Resource("calendars", {
    "agent": {Action.VIEW},
    "service": {Action.VIEW},
    "sales_rep": {Action.VIEW},
    "sales_manager": {Action.VIEW},
    "analyst": {Action.VIEW},
})

# Whose public comments are a ticket's first response.
AGENT_ROLES = frozenset({"agent", "admin"})
