from pydantic import field_validator
from pydantic_settings import SettingsConfigDict

from crm_runtime.settings import ServiceSettings


class SalesSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_SALES_", extra="ignore")

    name: str = "sales"
    http_port: int = 8002
    grpc_port: int = 50052
    relay_metrics_port: int = 9102
    worker_metrics_port: int = 9202
    # Region used to read contacts' phone numbers written without a country code.
    default_phone_region: str = "US"
    # Owner of an account opened for a converted lead that had no owner (a subject).
    unassigned_owner: str = "unassigned"

    @field_validator("unassigned_owner")
    @classmethod
    def _owner_is_a_subject(cls, value: str) -> str:
        value = value.strip()
        if not value or len(value) > 200 or not value.isprintable():
            raise ValueError("name a subject: 1 to 200 printable characters")
        return value
