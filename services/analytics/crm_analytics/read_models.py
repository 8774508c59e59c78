"""The analytics read models: every projection the service keeps, in one store.

Each is a `crm_runtime.readstore.Projection` with its own processed-event ids and positions,
so a projection added later replays the topics from the start by itself while the others
carry on from where they are.
"""

from __future__ import annotations

from crm_analytics import lead_projection
from crm_runtime.readstore import Projection
from crm_runtime.settings import PlatformSettings


class ReadModels:
    def __init__(self, platform: PlatformSettings):
        self.lead_report = lead_projection.open_projection(platform)

    @property
    def all(self) -> list[Projection]:
        return [self.lead_report]

    def check_store(self) -> None:
        for projection in self.all:
            projection.check()
