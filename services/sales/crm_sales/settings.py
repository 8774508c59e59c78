from pydantic_settings import SettingsConfigDict

from crm_runtime.settings import ServiceSettings


class SalesSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_SALES_", extra="ignore")

    name: str = "sales"
    http_port: int = 8002
    grpc_port: int = 50052
    relay_metrics_port: int = 9102
    # Region used to read contacts' phone numbers written without a country code.
    default_phone_region: str = "US"
