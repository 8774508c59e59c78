from crm_runtime.eventstore import ServiceApplication


class ServiceDeskApplication(ServiceApplication):
    name = "ServiceDesk"
