"""The suite's own command-line options, all in one place (Locust's ``init_command_line_parser``).

Imported by ``locustfile.py`` before anything that reads them. Group arguments are plain argparse
ones: Locust leaves them out of the web UI's form."""

from __future__ import annotations

from locust import events


@events.init_command_line_parser.add_listener
def add_arguments(parser) -> None:
    group = parser.add_argument_group("payment suite")
    group.add_argument("--profile-name", default="adhoc", help="Names the summary files (default adhoc)")
    group.add_argument("--report-dir", default="", help="Write <profile>-summary.json/.md here and gate on SLOs")
    group.add_argument("--slo-file", default="", help="Thresholds TOML file (default: SLO_FILE)")
    group.add_argument(
        "--steady-warmup",
        type=float,
        default=0.0,
        help="Seconds after spawning completes before the steady-state window starts",
    )
    group.add_argument(
        "--regression-tolerance",
        type=float,
        default=0.25,
        help="Relative change that counts as a regression against the baseline (default 0.25)",
    )
    group.add_argument(
        "--fail-on-regression",
        action="store_true",
        default=False,
        help="A regression against the baseline fails the verdict",
    )
    # In the UI's form as a masked field; empty means AUTH_TOKEN from the environment / .env, and
    # the default is empty on purpose: a default would be embedded in the page.
    parser.add_argument(
        "--auth-token",
        default="",
        is_secret=True,
        help="Bearer token for both services (empty: AUTH_TOKEN from the environment)",
    )


def report_dir(environment) -> str:
    """The run's report folder, or "" for a plain Locust run (no summary, no ledger)."""
    opts = environment.parsed_options
    return getattr(opts, "report_dir", "") if opts is not None else ""
