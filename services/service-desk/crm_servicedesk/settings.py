from pydantic_settings import SettingsConfigDict

from crm_runtime.settings import ServiceSettings


class ServiceDeskSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_SERVICEDESK_", extra="ignore")

    name: str = "service-desk"
    http_port: int = 8003
    grpc_port: int = 50053
    relay_metrics_port: int = 9103
