"""Sales service. Runs with health, readiness, metrics, its store and its topic
(crm.sales.events.v1); its domain arrives in the following issues."""
