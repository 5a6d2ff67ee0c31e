"""Spike: SPIKE_BASE_USERS for a stage, a sudden jump to SPIKE_PEAK_USERS (default USERS, 200),
then back to the base to watch recovery. Each stage lasts SPIKE_STAGE_SECONDS."""

from __future__ import annotations

from config import get_settings
from shapes import CappedShape

settings = get_settings()


class SpikeShape(CappedShape):
    base_users = settings.spike_base_users
    peak_users = settings.spike_peak_users or settings.users or 200
    stage_seconds = settings.spike_stage_seconds

    def shaped_tick(self):
        stages = [
            (self.base_users, self.base_users),
            (self.peak_users, self.peak_users),
            (self.base_users, self.peak_users),
        ]  # (users, spawn rate): the spike arrives at once
        index = int(self.get_run_time() // self.stage_seconds)
        return stages[index] if index < len(stages) else None
