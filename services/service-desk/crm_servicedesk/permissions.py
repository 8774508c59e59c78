"""The records the service desk owns, and which role may do what with them (admin: all).

- `agent` (a service-desk agent) works tickets: views them, opens them, changes their
  status and priority and comments on them; the first public comment by a caller with the
  `agent` (or `admin`) role is a ticket's first response. An agent sees and changes only
  the tickets of the groups their token names (its `groups` claim), those assigned to them
  and those they opened (crm_runtime.ownership); any other ticket is NotFound to them, in
  lists, gets and commands alike.
- `service` (service accounts: the workflow, an email or chat gateway) does what agents do
  and also `tickets:assign`: AssignTicket and EscalateTicket, and commenting for another
  author (a gateway relaying the customer's message).
- `sales_rep` opens tickets for their customers and sees the tickets they opened
  (crm_runtime.ownership: a ticket's owner is the subject who opened it).
- `sales_manager` and `analyst` view tickets; analysts also export.

Calendars and SLA policies are defined by admins and read by everyone who works tickets.

The knowledge base (`articles`): agents and service accounts draft, edit, publish and
archive articles; every role reads them. Who may edit articles (`articles:edit`: agents,
service accounts, admins) sees drafts and archived articles too; everyone else sees
published articles only (`sees_unpublished`), by id and in searches.

Satisfaction surveys are answered by the customer, who has no platform account: the
survey's single-use token is the credential, so `ANSWER_SURVEY` is public (no bearer
token; the request body is capped by the route's own size limit).
"""

from crm_runtime.auth import Action, Principal, Resource

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

ARTICLES = Resource("articles", {
    "agent": {Action.VIEW, Action.CREATE, Action.EDIT},
    "service": {Action.VIEW, Action.CREATE, Action.EDIT},
    "sales_rep": {Action.VIEW},
    "sales_manager": {Action.VIEW},
    "analyst": {Action.VIEW, Action.EXPORT},
})

SURVEYS = Resource("surveys", {})  # answered by token only (no role reads them over the API yet)
ANSWER_SURVEY = SURVEYS.public(Action.CREATE)


def sees_unpublished(who: Principal | None) -> bool:
    """Whether a caller sees draft and archived articles (None: the process itself)."""
    return who is None or who.can(ARTICLES.name, Action.EDIT)


# Whose public comments are a ticket's first response.
AGENT_ROLES = frozenset({"agent", "admin"})
