"""The Locust web UI, made safe by default and extended with a live SLO view."""
