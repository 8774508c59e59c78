"""Commands to the leads service over gRPC. Unavailable or slow means 'retry', not 'skip'."""

from __future__ import annotations

import grpc

from crm.leads.v1 import leads_pb2, leads_pb2_grpc
from crm_runtime import tracing
from crm_runtime.auth import ServiceAccount
from crm_runtime.consumer import TransientError

# Retried until they succeed: the peer is down, slow or busy, a concurrent write won, or
# the platform's configuration (secret, roles) is being fixed. INTERNAL and UNKNOWN are
# faults of the peer with this request: retried a few times, then dead-lettered.
RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
}


class LeadsClient:
    def __init__(self, target: str, timeout: float, account: ServiceAccount):
        self.target = target
        self.timeout = timeout
        self.account = account
        self._channel: grpc.aio.Channel | None = None

    def _stub(self) -> leads_pb2_grpc.LeadsServiceStub:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.target)
        return leads_pb2_grpc.LeadsServiceStub(self._channel)

    async def assign_lead(self, lead_id: str, owner_id: str, idempotency_key: str) -> leads_pb2.Lead:
        metadata = tracing.grpc_metadata() + self.account.grpc_metadata()
        try:
            return await self._stub().AssignLead(
                leads_pb2.AssignLeadRequest(lead_id=lead_id, owner_id=owner_id,
                                            idempotency_key=idempotency_key),
                timeout=self.timeout, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in RETRYABLE:
                raise TransientError(f"AssignLead {exc.code().name}: {exc.details()}") from exc
            raise

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
