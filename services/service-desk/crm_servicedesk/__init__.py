"""Service desk: tickets with SLA clocks on business calendars, SLA policies; publishes
crm.servicedesk.events.v1."""
