"""The platform runtime shared by every CRM service.

Event messages (CloudEvents over Kafka), the outbox relay, the faust consumer side,
event stores chosen by setting, trace/correlation context, and the HTTP/gRPC bootstrap.
"""
