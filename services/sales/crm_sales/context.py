"""The sales context, declared once: everything that runs it is derived from this."""

from crm.sales.v1 import sales_pb2, sales_pb2_grpc
from crm_runtime.context import Context
from crm_runtime.grpc_server import Registration
from crm_sales.application import SalesApplication
from crm_sales.settings import SalesSettings

CONTEXT = Context(
    name="sales",
    settings=SalesSettings,
    application=lambda settings: SalesApplication(settings.platform),
    topic="sales",
    grpc=lambda app: [Registration(
        sales_pb2_grpc.add_SalesServiceServicer_to_server, sales_pb2_grpc.SalesServiceServicer(),
        sales_pb2.DESCRIPTOR.services_by_name["SalesService"])],
)
