"""The SQLite event store's commit durability follows CRM_SQLITE_SYNCHRONOUS."""

from __future__ import annotations

import pytest

from crm_runtime.eventstore import ServiceApplication
from crm_runtime.settings import PlatformSettings

PRAGMA_VALUES = {"FULL": 2, "NORMAL": 1}


class Probe(ServiceApplication):
    name = "Probe"


def synchronous_of(app: ServiceApplication) -> int:
    with app.factory.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
        cursor.execute("PRAGMA synchronous")
        return cursor.fetchone()[0]


@pytest.mark.parametrize("mode", ["NORMAL", "FULL"])
def test_connections_use_the_configured_mode(tmp_path, mode):
    app = Probe(PlatformSettings(store="sqlite", data_dir=tmp_path, sqlite_synchronous=mode))
    assert synchronous_of(app) == PRAGMA_VALUES[mode]
    assert app.recorder.max_notification_id() in (None, 0)  # the store works


def test_default_is_normal(tmp_path):
    assert synchronous_of(Probe(PlatformSettings(store="sqlite", data_dir=tmp_path))) == PRAGMA_VALUES["NORMAL"]


def test_an_unknown_mode_is_refused(monkeypatch):
    monkeypatch.setenv("CRM_SQLITE_SYNCHRONOUS", "OFF")
    with pytest.raises(ValueError, match="sqlite_synchronous"):
        PlatformSettings()
