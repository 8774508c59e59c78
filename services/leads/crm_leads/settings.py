from pydantic_settings import SettingsConfigDict

from crm_runtime.settings import ServiceSettings


class LeadsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_LEADS_", extra="ignore")

    name: str = "leads"
    http_port: int = 8001
    grpc_port: int = 50051
    relay_metrics_port: int = 9101
    # Region used to read phone numbers written without a country code.
    default_phone_region: str = "US"
    # The largest CSV import (POST /v1/leads/imports request body, bytes); larger: 413.
    import_max_bytes: int = 50 * 1024 * 1024
