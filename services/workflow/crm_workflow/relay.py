"""Entry point: `python -m crm_workflow.relay` publishes decisions to crm.workflow.events.v1."""

from crm_runtime import relay, service
from crm_workflow.adapters.messages import event_to_message
from crm_workflow.application import WorkflowApplication
from crm_workflow.settings import WorkflowSettings


def main() -> None:
    settings = WorkflowSettings()
    service.configure_logging(settings, "workflow-relay")
    service.serve_metrics(settings.http_host, settings.relay_metrics_port)
    app = WorkflowApplication(settings.platform, settings.sales_rep_ids)
    relay.run_forever(relay.for_context(app, "workflow", event_to_message, settings.platform))


if __name__ == "__main__":
    main()
