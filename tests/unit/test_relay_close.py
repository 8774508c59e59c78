"""A relay stopping while the broker is gone ends cleanly: the producer's close raises when
it cannot flush in time, and the relay logs that instead of exiting with a traceback."""

from __future__ import annotations

from crm_leads.adapters.messages import EVENTS
from crm_leads.application import LeadsApplication
from crm_runtime.relay import CLOSE_TIMEOUT_SECONDS, OutboxRelay
from crm_runtime.settings import PlatformSettings


class ProducerOfAGoneBroker:
    closed_with: float | None = None

    def close(self, timeout: float | None = None) -> None:
        self.closed_with = timeout
        raise TimeoutError


def test_close_with_the_broker_gone_logs_and_returns(capsys):
    producer = ProducerOfAGoneBroker()
    relay = OutboxRelay(LeadsApplication(PlatformSettings(store="memory")), "leads-topic",
                        EVENTS.to_message, lambda: producer, source="crm/leads")  # type: ignore[arg-type, return-value]
    relay.connect()
    relay.close()
    assert producer.closed_with == CLOSE_TIMEOUT_SECONDS  # bounded: a stopping process ends within seconds
    assert relay.producer is None
    assert "relay.closed_unflushed" in capsys.readouterr().out
