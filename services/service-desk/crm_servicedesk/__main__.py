"""Entry point: `python -m crm_servicedesk` serves HTTP and gRPC."""

from crm.servicedesk.v1 import servicedesk_pb2, servicedesk_pb2_grpc
from crm_runtime import service
from crm_runtime.grpc_server import Registration
from crm_servicedesk.application import ServiceDeskApplication
from crm_servicedesk.settings import ServiceDeskSettings


def main() -> None:
    settings = ServiceDeskSettings()
    service.configure_logging(settings)
    app = ServiceDeskApplication(settings.platform)
    service.launch(settings, app.check_store, registrations=[Registration(
        servicedesk_pb2_grpc.add_ServiceDeskServiceServicer_to_server, servicedesk_pb2_grpc.ServiceDeskServiceServicer(),
        servicedesk_pb2.DESCRIPTOR.services_by_name["ServiceDeskService"])])


if __name__ == "__main__":
    main()
