from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from crm_runtime.settings import ServiceSettings
from crm_workflow.contract_reminders import ReminderSettings


class WorkflowSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_WORKFLOW_", extra="ignore")

    name: str = "workflow"
    http_port: int = 8004
    grpc_port: int = 50054
    relay_metrics_port: int = 9104
    worker_metrics_port: int = 9204
    dispatcher_metrics_port: int = 9304
    # Comma-separated ids of the sales reps that new leads rotate through.
    sales_reps: str = "rep-ada,rep-grace,rep-linus"
    # Where the dispatcher sends commands for the leads service (`<service>_grpc_target`).
    leads_grpc_target: str = "127.0.0.1:50051"
    # ... and for the service desk (AssignTicket, EscalateTicket).
    service_desk_grpc_target: str = "127.0.0.1:50053"
    # How often the worker looks for due timers (seconds).
    timer_poll_seconds: float = 0.2
    # Contract reminders (crm_workflow.contract_reminders): days before an instalment's due
    # date, and before a contract's ends_on.
    instalment_reminder_days: int = Field(default=7, ge=0, le=366)
    renewal_reminder_days: int = Field(default=30, ge=0, le=366)

    @field_validator("sales_reps")
    @classmethod
    def _at_least_one_rep(cls, value: str) -> str:
        if not [rep for rep in value.split(",") if rep.strip()]:
            raise ValueError("name at least one sales rep (comma-separated ids)")
        return value

    @property
    def sales_rep_ids(self) -> list[str]:
        return [rep.strip() for rep in self.sales_reps.split(",") if rep.strip()]

    @property
    def reminders(self) -> ReminderSettings:
        return ReminderSettings(self.instalment_reminder_days, self.renewal_reminder_days)
