"""Entry point: `python -m crm_leads` serves HTTP and gRPC."""

from crm_leads.adapters import grpc as grpc_adapter
from crm_leads.adapters import http as http_adapter
from crm_leads.application import LeadsApplication
from crm_leads.settings import LeadsSettings
from crm_runtime import service


def main() -> None:
    settings = LeadsSettings()
    service.configure_logging(settings)
    app = LeadsApplication(settings.platform, settings.default_phone_region)
    service.launch(settings, app.check_store, routers=[http_adapter.router(app)],
                   registrations=[grpc_adapter.registration(app)])


if __name__ == "__main__":
    main()
