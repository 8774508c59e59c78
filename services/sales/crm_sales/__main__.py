"""Entry point: `python -m crm_sales` serves HTTP and gRPC."""

from crm.sales.v1 import sales_pb2, sales_pb2_grpc
from crm_runtime import service
from crm_runtime.grpc_server import Registration
from crm_sales.application import SalesApplication
from crm_sales.settings import SalesSettings


def main() -> None:
    settings = SalesSettings()
    service.configure_logging(settings)
    app = SalesApplication(settings.platform)
    service.launch(settings, app.check_store, registrations=[Registration(
        sales_pb2_grpc.add_SalesServiceServicer_to_server, sales_pb2_grpc.SalesServiceServicer(),
        sales_pb2.DESCRIPTOR.services_by_name["SalesService"])])


if __name__ == "__main__":
    main()
