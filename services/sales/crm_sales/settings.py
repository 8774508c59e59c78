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
    # The currency reports, thresholds, loyalty points and commission attainment are in
    # (documents keep their own; the FX table converts).
    base_currency: str = "EUR"
    # A contract whose total in the base currency is above this needs a manager's approval.
    contract_approval_threshold: str = "100000"
    # A converted lead's opportunity is expected to close this many days after conversion.
    converted_opportunity_close_days: int = 30

    @field_validator("base_currency")
    @classmethod
    def _is_a_currency(cls, value: str) -> str:
        from crm_runtime.money import is_currency

        if not is_currency(value):
            raise ValueError("name an ISO 4217 currency with a minor unit, e.g. EUR")
        return value

    @field_validator("contract_approval_threshold")
    @classmethod
    def _is_an_amount(cls, value: str) -> str:
        from decimal import Decimal, InvalidOperation

        try:
            amount = Decimal(value)
        except InvalidOperation:
            raise ValueError("a decimal amount in the base currency, e.g. 100000") from None
        if not amount.is_finite() or amount < 0:
            raise ValueError("a decimal amount in the base currency, not negative")
        return value

    @field_validator("converted_opportunity_close_days")
    @classmethod
    def _days(cls, value: int) -> int:
        if not 0 <= value <= 3660:
            raise ValueError("between 0 and 3660 days")
        return value

    @field_validator("unassigned_owner")
    @classmethod
    def _owner_is_a_subject(cls, value: str) -> str:
        value = value.strip()
        if not value or len(value) > 200 or not value.isprintable():
            raise ValueError("name a subject: 1 to 200 printable characters")
        return value
