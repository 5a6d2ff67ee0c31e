"""Run verdicts: steady-state statistics, SLO thresholds, integrity checks, summaries and
baseline comparison. ``reporting.hooks`` wires them into Locust's events; other packages add
their part of the summary as a section (``reporting.sections``)."""
