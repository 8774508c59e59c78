"""The records the sales service owns, and which role may do what with them (admin: all).

What a role may do is one half; which records it may do it to is the other: a `sales_rep`
sees and changes only the accounts it owns and the contacts of those accounts
(crm_runtime.ownership, applied by every get, list and command in crm_sales.application).
Setting an account's owner to anyone but yourself is `accounts:assign`.
"""

from crm_runtime.auth import ALL_ACTIONS, Action, Resource

ACCOUNTS = Resource("accounts", {
    "sales_manager": ALL_ACTIONS,
    "sales_rep": {Action.VIEW, Action.CREATE, Action.EDIT},
    # Service accounts: other services acting for the platform (e.g. a lead converted into
    # an account and a contact, a territory rule assigning an owner).
    "service": {Action.VIEW, Action.CREATE, Action.EDIT, Action.ASSIGN},
    "analyst": {Action.VIEW, Action.EXPORT},
})

CONTACTS = Resource("contacts", {
    "sales_manager": ALL_ACTIONS,
    "sales_rep": {Action.VIEW, Action.CREATE, Action.EDIT},
    "service": {Action.VIEW, Action.CREATE, Action.EDIT},
    "analyst": {Action.VIEW, Action.EXPORT},
})
