from pydantic_settings import SettingsConfigDict

from crm_runtime.settings import ServiceSettings


class AnalyticsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_ANALYTICS_", extra="ignore")

    name: str = "analytics"
    http_port: int = 8005
    grpc_port: int = 50055
    worker_metrics_port: int = 9205
