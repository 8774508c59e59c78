"""ServiceDesk service. Runs with health, readiness, metrics, its store and its topic
(crm.servicedesk.events.v1); its domain arrives in the following issues."""
