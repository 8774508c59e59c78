from crm_runtime import tracing


def test_bound_context_is_a_child_span_of_the_caller_trace():
    parent = tracing.new_traceparent()
    with tracing.bound(parent, "corr-1") as ctx:
        assert tracing.trace_id(ctx["traceparent"]) == tracing.trace_id(parent)
        assert ctx["traceparent"] != parent
        assert tracing.current() == {"traceparent": ctx["traceparent"], "correlation_id": "corr-1"}
    assert tracing.current() == {}


def test_missing_or_bad_parent_starts_a_new_trace_and_correlation_id():
    with tracing.bound("garbage") as ctx:
        assert tracing.trace_id(ctx["traceparent"]) is not None
        assert ctx["correlation_id"]


def test_grpc_metadata_uses_wire_names():
    with tracing.bound(None, "corr-2"):
        assert dict(tracing.grpc_metadata())["x-correlation-id"] == "corr-2"


def test_unsafe_correlation_ids_are_replaced():
    for bad in ("x" * 129, "line\nbreak", "", "quote\"s"):
        with tracing.bound(None, bad) as ctx:
            assert ctx["correlation_id"] != bad and len(ctx["correlation_id"]) == 36
