"""A PostgreSQL database of its own, for a test or a benchmark: created empty, dropped after.

Figures measured on the shared `crm` database would depend on what earlier runs left in it
(a report that scans its table gets slower with every run), and tests would see each
other's rows."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from crm_runtime.settings import PlatformSettings


def _admin_dsn(platform: PlatformSettings) -> str:
    return (f"host={platform.postgres_host} port={platform.postgres_port} dbname={platform.postgres_dbname} "
            f"user={platform.postgres_user} password={platform.postgres_password.get_secret_value()}")


@contextmanager
def fresh_database(platform: PlatformSettings, prefix: str = "crm_bench") -> Iterator[PlatformSettings]:
    """`platform` on a new, empty database named `<prefix>_<random>`, dropped afterwards
    (its connections closed first)."""
    admin = _admin_dsn(platform)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield platform.model_copy(update={"postgres_dbname": name})
    finally:
        for attempt in range(10):
            try:
                with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                break
            except psycopg.Error:
                if attempt == 9:
                    print(f"could not drop the database {name}; drop it by hand", flush=True)
                time.sleep(1)
