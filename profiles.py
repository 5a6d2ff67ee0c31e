"""The load profiles (``profiles.toml``) and what ``scripts/run_tests.sh`` does with them.

    python -m profiles list [--json]      the table (for people, or for machines)
    python -m profiles help               the runner's usage text
    python -m profiles markdown           the profile table of docs/profiles.md
    python -m profiles plan NAME [ARGS]   the run, as shell assignments the runner evaluates

``list``, ``help`` and ``markdown`` need only the standard library (they work before the
virtualenv exists); ``plan`` validates every setting first and exits 2 with one line per
problem."""

from __future__ import annotations

import json
import shlex
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TABLE = ROOT / "profiles.toml"
USAGE_EXIT = 2
SERVICES = ("payment", "bank")
# Commands of the runner that are not load profiles (the help lists them; see run_tests.sh).
COMMANDS = {
    "list": "the profiles as a table (--json for machines)",
    "ui": "the web UI (http://127.0.0.1:8089, WEB_PORT) with the class picker; a profile sets its default users "
    "and spawn rate. WEB_HOST=0.0.0.0 exposes it and then requires WEB_USERNAME and WEB_PASSWORD (--web-login)",
    "compare": "compare the last run of <profile> with its last passing run",
    "history": "the trend of past runs ([profile]): prints it and writes REPORT_DIR/history.html",
    "docker": "distributed run in Docker: master + 2 workers (docker-compose.locust.yml)",
    # docker-<profile> for each profile with a `compose` entry: see docker_commands()
    "stop-docker": "stop every compose service of the suite",
    "master": "master <profile>: the profile's master for workers on other machines (MASTER_BIND_HOST, MASTER_PORT); "
    "waits for EXPECT_WORKERS (default WORKERS) and writes the reports",
    "worker": "worker [profile]: a worker for a master on another machine (MASTER_HOST, MASTER_PORT)",
    "help": "this text",
}


class ProfileError(ValueError):
    """A profile table or a request that cannot be run; the message says what to change."""


@dataclass(frozen=True)
class Waits:
    min_ms: int | None = None
    max_ms: int | None = None
    think_time_scale: float | None = None


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    users: int
    spawn_rate: float
    run_time: str
    classes: tuple[str, ...] = ()
    locustfiles: tuple[str, ...] = ()
    shape: str | None = None
    waits: Waits = field(default_factory=Waits)
    targets: tuple[str, ...] = SERVICES
    heavy: bool = False
    requires: tuple[str, ...] = ()
    distributed: bool = False
    compose: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def files(self) -> str:
        """The -f argument: the suite's locustfile, then extra locustfiles and the shape."""
        return ",".join(["locustfile.py", *self.locustfiles, *([self.shape] if self.shape else [])])

    def row(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "users": self.users,
            "spawn_rate": self.spawn_rate,
            "run_time": self.run_time,
            "classes": list(self.classes) or ["all (weighted)"],
            "shape": self.shape,
            "targets": list(self.targets),
            "heavy": self.heavy,
            "distributed": self.distributed,
            "compose": self.compose,
        }


_FIELDS = {
    "description": str,
    "users": int,
    "spawn_rate": (int, float),
    "run_time": str,
    "classes": list,
    "locustfiles": list,
    "shape": str,
    "waits": dict,
    "targets": list,
    "heavy": bool,
    "requires": list,
    "distributed": bool,
    "compose": str,
    "env": dict,
}
_REQUIRED = ("description", "users", "spawn_rate", "run_time")


def _profile(name: str, raw: dict, source: Path) -> Profile:
    where = f"{source.name} [{name}]"
    unknown = sorted(set(raw) - set(_FIELDS))
    if unknown:
        raise ProfileError(f"{where}: unknown field(s) {unknown}; allowed: {', '.join(_FIELDS)}")
    missing = [f for f in _REQUIRED if f not in raw]
    if missing:
        raise ProfileError(f"{where}: missing {', '.join(missing)}")
    for key, kind in _FIELDS.items():
        if key in raw and (not isinstance(raw[key], kind) or (kind is int and isinstance(raw[key], bool))):
            raise ProfileError(f"{where}: {key} has the wrong type ({type(raw[key]).__name__})")
    if raw["users"] < 1 or raw["spawn_rate"] <= 0:
        raise ProfileError(f"{where}: users must be >= 1 and spawn_rate > 0")
    targets = tuple(raw.get("targets", SERVICES))
    if not targets or set(targets) - set(SERVICES):
        raise ProfileError(f"{where}: targets must be a non-empty list of {', '.join(SERVICES)}")
    for path in [*raw.get("locustfiles", []), *([raw["shape"]] if raw.get("shape") else [])]:
        if not (ROOT / path).is_file():
            raise ProfileError(f"{where}: {path} does not exist")
    waits = raw.get("waits", {})
    if set(waits) - {"min_ms", "max_ms", "think_time_scale"}:
        raise ProfileError(f"{where}: waits takes min_ms, max_ms, think_time_scale")
    return Profile(
        name=name,
        description=raw["description"],
        users=raw["users"],
        spawn_rate=float(raw["spawn_rate"]),
        run_time=raw["run_time"],
        classes=tuple(raw.get("classes", ())),
        locustfiles=tuple(raw.get("locustfiles", ())),
        shape=raw.get("shape"),
        waits=Waits(**waits),
        targets=targets,
        heavy=raw.get("heavy", False),
        requires=tuple(raw.get("requires", ())),
        distributed=raw.get("distributed", False),
        compose=raw.get("compose"),
        env={str(k): str(v) for k, v in raw.get("env", {}).items()},
    )


def load(path: Path = TABLE) -> dict[str, Profile]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"{path.name}: cannot read the profile table ({exc})") from None
    profiles = {}
    for name, raw in data.items():
        if name in COMMANDS or name.startswith(DOCKER_PREFIX):
            raise ProfileError(f"{path.name} [{name}]: the name is a runner command")
        if not isinstance(raw, dict):
            raise ProfileError(f"{path.name}: {name} is not a [table]")
        profiles[name] = _profile(name, raw, path)
    return profiles


DOCKER_PREFIX = "docker-"


def docker_commands(profiles: dict[str, Profile]) -> dict[str, str]:
    """``docker-<profile>`` for every profile the compose file runs (its ``compose`` entry)."""
    return {
        f"{DOCKER_PREFIX}{p.name}": f"compose profile {p.compose} (the {p.name} profile in Docker)"
        for p in profiles.values()
        if p.compose
    }


def compose_profile(command: str, profiles: dict[str, Profile]) -> str:
    """The compose profile a ``docker-<profile>`` command runs."""
    name = command.removeprefix(DOCKER_PREFIX)
    if command not in docker_commands(profiles):
        with_compose = " ".join(docker_commands(profiles))
        raise ProfileError(f"no compose profile for '{name}' (docker commands: docker {with_compose})")
    return profiles[name].compose or ""


def _rate(value: float) -> str:
    return f"{value:g}"


def usage(profiles: dict[str, Profile]) -> str:
    lines = ["usage: run_tests.sh <profile> [extra locust args]", "", "Load profiles:"]
    commands = {**COMMANDS, **docker_commands(profiles)}
    name_width = max(len(name) for name in [*profiles, *commands])  # one column for both lists
    text_width = max(len(p.description) for p in profiles.values())
    for p in profiles.values():
        sizes = f"({p.users} users, {_rate(p.spawn_rate)}/s, {p.run_time})"
        lines.append(f"  {p.name:<{name_width}}  {p.description:<{text_width}}  {sizes}")
    lines += ["", "Other commands:"]
    lines += [f"  {name:<{name_width}}  {text}" for name, text in commands.items()]
    lines += [
        "",
        "Overrides (environment or .env): USERS, SPAWN_RATE, RUN_TIME (e.g. 90s, 5m, 1h30m; a cap for shaped",
        "profiles), LOCUST_HOST (the PaymentService), WORKERS (distributed, default 2), REPORT_DIR (default",
        "reports), DRY_RUN=1 (print the locust command only), ALLOW_REMOTE_TARGET=yes (heavy profiles against",
        "a non-local host). Every setting is in .env.example; docs/configuration.md explains them.",
        "",
        "Reports: REPORT_DIR/<profile>-report.html, <profile>_stats.csv, <profile>_stats_history.csv,",
        "<profile>_failures.csv, <profile>_exceptions.csv, <profile>.json, <profile>-summary.json/.md.",
        "Exit status: 0 pass, 1 fail (thresholds, failures, money, integrity), 2 usage/config, 3 target unreachable.",
    ]
    return "\n".join(lines)


def table(profiles: dict[str, Profile]) -> str:
    rows = [("profile", "users", "rate/s", "time", "classes", "what")]
    for p in profiles.values():
        rows.append(
            (p.name, str(p.users), _rate(p.spawn_rate), p.run_time, " ".join(p.classes) or "all", p.description)
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1] for r in rows)


def markdown(profiles: dict[str, Profile]) -> str:
    lines = ["| profile | users | rate/s | time | user classes | what |", "|---|---:|---:|---|---|---|"]
    for p in profiles.values():
        classes = ", ".join(f"`{c}`" for c in p.classes) or "all four, by weight"
        extra = []
        if p.shape:
            extra.append(f"shape `{p.shape}`")
        if p.distributed:
            extra.append("master + `WORKERS` local workers")
        if p.heavy:
            extra.append("heavy")
        what = p.description + (f" ({'; '.join(extra)})" if extra else "")
        lines.append(f"| `{p.name}` | {p.users} | {_rate(p.spawn_rate)} | {p.run_time} | {classes} | {what} |")
    return "\n".join(lines)


# --- plan: what the runner runs ------------------------------------------------------------------


@dataclass
class Plan:
    profile: Profile
    users: int
    spawn_rate: float
    run_time: str
    report_dir: str
    env: dict[str, str]
    command: list[str]
    worker_command: list[str]
    workers: int
    dry_run: bool
    run_line: str  # what the run is, in the profile's own terms (run_line())

    def shell(self) -> str:
        """Bash assignments (every value quoted) the runner evaluates."""
        q = shlex.quote
        out = [
            f"PLAN_NAME={q(self.profile.name)}",
            f"PLAN_NEEDS={q(','.join(self.profile.targets))}",
            f"PLAN_HEAVY={int(self.profile.heavy)}",
            f"PLAN_WORKERS={self.workers if self.profile.distributed else 0}",
            f"PLAN_REPORT_DIR={q(self.report_dir)}",
            f"PLAN_DRY_RUN={int(self.dry_run)}",
            f"PLAN_SUMMARY={q(self.run_line)}",
            "PLAN_CMD=(" + " ".join(q(w) for w in self.command) + ")",
            "PLAN_WORKER_CMD=(" + " ".join(q(w) for w in self.worker_command) + ")",
        ]
        out += [f"export {k}={q(v)}" for k, v in self.env.items()]
        return "\n".join(out)


def _wait_env(profile: Profile, settings) -> dict[str, str]:
    """The profile's wait defaults, for the variables the user did not set themselves."""
    chosen = settings.model_fields_set
    env: dict[str, str] = {}
    w = profile.waits
    low = settings.min_wait_time if "min_wait_time" in chosen or w.min_ms is None else w.min_ms
    high = settings.max_wait_time if "max_wait_time" in chosen or w.max_ms is None else w.max_ms
    if low > high:  # the user set one side: the profile's other side gives way
        low, high = (low, low) if "min_wait_time" in chosen else (high, high)
    if "min_wait_time" not in chosen and w.min_ms is not None:
        env["MIN_WAIT_TIME"] = str(low)
    if "max_wait_time" not in chosen and w.max_ms is not None:
        env["MAX_WAIT_TIME"] = str(high)
    if "think_time_scale" not in chosen and w.think_time_scale is not None:
        env["THINK_TIME_SCALE"] = f"{w.think_time_scale:g}"
    return env


def plan(name: str, extra: list[str], python: str = "python") -> Plan:
    """The run of profile ``name``, or ProfileError / SystemExit(2) for a bad setting."""
    profiles = load()
    if name not in profiles:
        raise ProfileError(
            f"unknown profile '{name}' (profiles: {' '.join(profiles)} | commands: {' '.join(COMMANDS)})"
        )
    from config import check_report_dir, get_settings  # needs the virtualenv (pydantic)

    settings = get_settings()  # one line per bad variable, exit 2
    p = profiles[name]
    for flag in p.requires:
        if not getattr(settings, flag, False):
            var = flag.upper()
            raise ProfileError(
                f"profile '{name}' needs {var}=true: {var}=false turns off what it runs "
                f"({', '.join(p.classes) or 'its user classes'}); set {var}=true or pick another profile"
            )
    problem = check_report_dir(settings.report_dir)
    if problem:
        raise ProfileError(f"REPORT_DIR={settings.report_dir!r}: {problem}; set REPORT_DIR to a writable folder")
    users = settings.users or p.users
    rate = settings.spawn_rate or p.spawn_rate
    run_time = settings.run_time or p.run_time
    rd = settings.report_dir
    cmd = [python, "-m", "locust", "-f", p.files, "--headless"]
    if "BurstUser" not in p.classes:  # the burst's shape ignores -u/-r/-t (and Locust warns that it does)
        cmd += ["-u", str(users), "-r", _rate(rate), "-t", run_time]
    if not settings.locust_table:  # the progress line (reporting/progress.py) instead of the table every 2 s
        cmd.append("--only-summary")
    cmd += ["--profile-name", name, "--report-dir", rd, "--html", f"{rd}/{name}-report.html"]
    cmd += ["--csv", f"{rd}/{name}", "--json-file", f"{rd}/{name}", "--stop-timeout", "10"]
    if p.distributed:
        cmd += ["--master", "--master-bind-host", "127.0.0.1", "--expect-workers", str(settings.workers)]
        cmd += ["--expect-workers-max-wait", "60"]
    cmd += [*p.classes, *extra]
    worker = [python, "-m", "locust", "-f", p.files, "--worker", "--master-host", "127.0.0.1"] if p.distributed else []
    env = {**p.env, **_wait_env(p, settings)}
    line = run_line(p, users, rate, run_time, settings)
    return Plan(p, users, rate, run_time, rd, env, cmd, worker, settings.workers, settings.dry_run, line)


def run_line(p: Profile, users: int, rate: float, run_time: str, settings) -> str:
    """The runner's "run:" line in the profile's terms: users and spawn rate (closed model), the
    shape's peak and cap, arrivals per second (rate), or payments and concurrency (burst)."""
    if "BurstUser" in p.classes:
        return f"{settings.total} payments, {settings.concurrency} in flight, until all are answered"
    if "RateUser" in p.classes:
        if settings.rate_stages:
            arrivals = f"arrivals/s by stages {settings.rate_stages}"
        else:
            ramp = f" after a {settings.ramp:g} s ramp" if settings.ramp else ""
            arrivals = f"{settings.target_rps:g} arrivals/s{ramp}"
        where = f" over {users} schedulers" if p.distributed else ""
        return f"{arrivals} of {settings.rate_class}{where} for {run_time}"
    if p.shape:
        return f"shape {p.shape}, up to {users} users, at most {run_time}"
    return f"{users} users at {_rate(rate)}/s for {run_time}"


def ui_plan(name: str, extra: list[str], python: str = "python") -> Plan:
    """The web UI with a profile's files and default users/rate (the class picker chooses classes)."""
    base = plan(name, [], python)
    from config import get_settings, is_loopback_host

    settings = get_settings()
    cmd = [python, "-m", "locust", "-f", base.profile.files, "--class-picker", "--web-host", settings.web_host]
    cmd += ["--web-port", str(settings.web_port), "-u", str(base.users), "-r", _rate(base.spawn_rate)]
    cmd += ["--profile-name", f"ui-{name}", "--report-dir", base.report_dir]
    if not is_loopback_host(settings.web_host):
        cmd.append("--web-login")  # exposed: a login is required (the locustfile refuses to start without one)
    base.command, base.worker_command = [*cmd, *extra], []
    return base


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    what = args.pop(0) if args else "help"
    try:
        if what in ("plan", "ui"):
            if not args:
                raise ProfileError(f"{what} needs a profile name")
            make = plan if what == "plan" else ui_plan
            run = make(args[0], args[1:], python=sys.executable)
            from plancheck import PlanError, check  # needs the virtualenv (Locust)

            try:
                check(run.command[3:])  # the arguments after `python -m locust`
            except PlanError as exc:
                raise ProfileError(str(exc)) from None
            print(run.shell())
            return 0
        profiles = load()
        if what == "list":
            if "--json" in args:
                print(json.dumps([p.row() for p in profiles.values()], indent=2))
            else:
                print(table(profiles))
        elif what == "names":
            print(" ".join(profiles))
        elif what == "markdown":
            print(markdown(profiles))
        elif what == "help":
            print(usage(profiles))
        elif what == "compose":
            print(compose_profile(args[0] if args else "", profiles))
        else:
            raise ProfileError(f"unknown subcommand '{what}' (list, names, markdown, help, plan, compose)")
    except ProfileError as exc:
        text = str(exc)
        print(text if text.startswith("config error:") else f"error: {text}", file=sys.stderr)
        return USAGE_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(main())
