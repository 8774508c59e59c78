"""Sales service: accounts and contacts (domain.py), their commands and queries
(application.py), the query model behind lists (views.py), HTTP, gRPC and published events
(adapters/). Events go to crm.sales.events.v1."""
