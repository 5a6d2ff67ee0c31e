"""Spike: SPIKE_BASE_USERS for a stage, a sudden jump to SPIKE_PEAK_USERS, then back to the
base to watch recovery. Each stage lasts SPIKE_STAGE_SECONDS."""

from __future__ import annotations

import os

from locust import LoadTestShape


class SpikeShape(LoadTestShape):
    base_users = int(os.environ.get("SPIKE_BASE_USERS", 10))
    peak_users = int(os.environ.get("SPIKE_PEAK_USERS", os.environ.get("USERS", 200)))
    stage_seconds = float(os.environ.get("SPIKE_STAGE_SECONDS", 60))

    def tick(self):
        run_time = self.get_run_time()
        stages = [
            (self.base_users, self.base_users),
            (self.peak_users, self.peak_users),
            (self.base_users, self.peak_users),
        ]  # (users, spawn rate): the spike arrives at once
        index = int(run_time // self.stage_seconds)
        return stages[index] if index < len(stages) else None
