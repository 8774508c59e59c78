"""Query-model connections to PostgreSQL: pinged only after sitting idle, and a connection
the server dropped meanwhile is replaced before anyone uses it."""

import time

from sqlalchemy import text

from crm_runtime import readstore


def test_a_connection_the_server_dropped_while_idle_is_replaced(postgres_platform, monkeypatch):
    monkeypatch.setattr(readstore, "PING_AFTER_IDLE_SECONDS", 0.2)
    engine = readstore.make_engine(postgres_platform, "pool-test")
    try:
        with engine.connect() as conn:
            first = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        with engine.connect() as conn:  # in use again at once: the same connection, no ping
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar() == first
        killer = readstore.make_engine(postgres_platform, "pool-test-killer")
        with killer.connect() as other:  # the server ends the pooled one (a restart, say)
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
            other.commit()
        killer.dispose()
        time.sleep(0.3)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar() != first
    finally:
        engine.dispose()
