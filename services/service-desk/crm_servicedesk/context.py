"""The service-desk context, declared once: everything that runs it is derived from this."""

from crm.servicedesk.v1 import servicedesk_pb2, servicedesk_pb2_grpc
from crm_runtime.context import Context
from crm_runtime.grpc_server import Registration
from crm_servicedesk.application import ServiceDeskApplication
from crm_servicedesk.settings import ServiceDeskSettings

CONTEXT = Context(
    name="service-desk",
    settings=ServiceDeskSettings,
    application=lambda settings: ServiceDeskApplication(settings.platform),
    topic="servicedesk",
    grpc=lambda app: [Registration(
        servicedesk_pb2_grpc.add_ServiceDeskServiceServicer_to_server,
        servicedesk_pb2_grpc.ServiceDeskServiceServicer(),
        servicedesk_pb2.DESCRIPTOR.services_by_name["ServiceDeskService"])],
)
