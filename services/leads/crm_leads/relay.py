"""Entry point: `python -m crm_leads.relay` publishes the leads store to crm.leads.events.v1."""

from crm_leads.adapters.messages import event_to_message
from crm_leads.application import LeadsApplication
from crm_leads.settings import LeadsSettings
from crm_runtime import relay, service


def main() -> None:
    settings = LeadsSettings()
    service.configure_logging(settings, "leads-relay")
    service.serve_metrics(settings.http_host, settings.relay_metrics_port)
    app = LeadsApplication(settings.platform)
    relay.run_forever(relay.for_context(app, "leads", event_to_message, settings.platform))


if __name__ == "__main__":
    main()
