"""The records the sales service owns, and which role may do what with them (admin: all).

What a role may do is one half; which records it may do it to is the other: a `sales_rep`
sees and changes only the accounts it owns and the contacts of those accounts, and the opportunities it owns and their
quotes (crm_runtime.ownership, applied by every get, list and command in
crm_sales.application). Setting an account's or an opportunity's owner to anyone but
yourself is `accounts:assign` / `opportunities:assign`.
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

# The pipeline's stages and probabilities: everyone working deals reads them, managers
# (and admins) change them.
PIPELINE = Resource("pipeline", {
    "sales_manager": ALL_ACTIONS,
    "sales_rep": {Action.VIEW},
    "service": {Action.VIEW},
    "analyst": {Action.VIEW, Action.EXPORT},
})

# Opportunities have an owner: a rep opens and works their own (another owner than the
# caller is `opportunities:assign`).
OPPORTUNITIES = Resource("opportunities", {
    "sales_manager": ALL_ACTIONS,
    "sales_rep": {Action.VIEW, Action.CREATE, Action.EDIT},
    "service": {Action.VIEW, Action.CREATE, Action.EDIT},
    "analyst": {Action.VIEW, Action.EXPORT},
})

# The catalogue: managers keep it, everyone selling reads it.
PRODUCTS = Resource("products", {
    "sales_manager": ALL_ACTIONS,
    "sales_rep": {Action.VIEW},
    "service": {Action.VIEW},
    "analyst": {Action.VIEW, Action.EXPORT},
})

PRICE_BOOKS = Resource("price_books", {
    "sales_manager": ALL_ACTIONS,
    "sales_rep": {Action.VIEW},
    "service": {Action.VIEW},
    "analyst": {Action.VIEW, Action.EXPORT},
})

# A quote belongs to its opportunity's owner: a rep drafts, sends, accepts and revises the
# quotes of their own opportunities.
QUOTES = Resource("quotes", {
    "sales_manager": ALL_ACTIONS,
    "sales_rep": {Action.VIEW, Action.CREATE, Action.EDIT},
    "service": {Action.VIEW},
    "analyst": {Action.VIEW, Action.EXPORT},
})

# The FX table: managers keep it; everyone reads it (it converts for reports and thresholds).
FX_RATES = Resource("fx_rates", {
    "sales_manager": ALL_ACTIONS,
    "sales_rep": {Action.VIEW},
    "service": {Action.VIEW},
    "analyst": {Action.VIEW, Action.EXPORT},
})

# A contract belongs to its quote's owner: a rep drafts, submits, signs, activates, records
# payments on and renews their own. Service accounts (the workflow) read them and expire them.
CONTRACTS = Resource("contracts", {
    "sales_manager": ALL_ACTIONS,
    "sales_rep": {Action.VIEW, Action.CREATE, Action.EDIT},
    "service": {Action.VIEW, Action.EDIT},
    "analyst": {Action.VIEW, Action.EXPORT},
})

# Approving or rejecting a contract waiting for approval (`contract_approvals:edit`): managers
# and admins only, and never on a contract they own or submitted (crm_sales.contracts).
CONTRACT_APPROVALS = Resource("contract_approvals", {
    "sales_manager": ALL_ACTIONS,
})

# Orders are placed by winning a deal, never over the API; a rep sees their own.
ORDERS = Resource("orders", {
    "sales_manager": ALL_ACTIONS,
    "sales_rep": {Action.VIEW},
    "service": {Action.VIEW},
    "analyst": {Action.VIEW, Action.EXPORT},
})

# Loyalty: `view` reads an account's ledger (a rep: of their own accounts), `create`
# redeems points, `edit` sets the earning rule (managers).
LOYALTY = Resource("loyalty", {
    "sales_manager": ALL_ACTIONS,
    "sales_rep": {Action.VIEW, Action.CREATE},
    "service": {Action.VIEW},
    "analyst": {Action.VIEW, Action.EXPORT},
})

# Commissions: `view` lists a rep's (a rep: their own), `edit` sets the plan (managers).
COMMISSIONS = Resource("commissions", {
    "sales_manager": ALL_ACTIONS,
    "sales_rep": {Action.VIEW},
    "analyst": {Action.VIEW, Action.EXPORT},
})
