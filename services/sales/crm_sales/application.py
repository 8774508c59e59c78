from crm_runtime.eventstore import ServiceApplication


class SalesApplication(ServiceApplication):
    name = "Sales"
