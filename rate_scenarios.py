"""Open-model scenario (the `rate` profiles): arrivals at TARGET_RPS (or RATE_STAGES), each running
one task of RATE_CLASS (default PaymentServiceUser's mix), with latencies corrected for
coordinated omission. Run next to the main locustfile, one RateUser per process:

    locust -f locustfile.py,rate_scenarios.py --headless -u 1 -t 60s RateUser
"""

from reporting.thresholds import use_corrected_defaults
from users.open_model import RateUser

# The profile's default latency limits apply to the corrected latencies (a thresholds file may
# still name either: p99_ms or p99_corrected_ms).
use_corrected_defaults()

__all__ = ["RateUser"]
