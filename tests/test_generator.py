"""The efficiency bench (bench/generator.py efficiency, issue 21): its three rows do the same work and
are counted over the same window. The bench itself needs nginx and minutes; these check, in
seconds, what its figures rest on: the suite row runs only the payment task, the plain Locust row
judges answers as the suite's contract binding does, and the window is cut and counted as stated.

Whatever imports Locust runs in a subprocess: Locust must monkey-patch before anything imports ssl,
and the test session has already imported it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import common, generator
from bench.generator import same_work_commands, write_bodies
from tests.helpers import ROOT


def in_subprocess(code: str, *args: str, env: dict | None = None) -> object:
    """Run ``code`` in a fresh interpreter at the repository root; it prints one JSON value."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


PARSE = """
import json, sys
from locust.argument_parser import parse_options
options = parse_options(json.loads(sys.argv[1]))
print(json.dumps([options.user_classes, options.tags]))
"""


def test_suite_row_runs_only_the_payment_task(tmp_path: Path) -> None:
    """Locust's --tags takes every word after it: a class name placed there runs all four classes."""
    cmd, env = same_work_commands("suite", "http://127.0.0.1:9", 64, 20, tmp_path)
    classes, tags = in_subprocess(PARSE, json.dumps(cmd[3:]))  # after "python -m locust"
    assert classes == ["PaymentServiceUser"]
    assert tags == ["payments"]
    assert env["SIMULATE_FAILURES"] == "false" and env["MIN_WAIT_TIME"] == env["MAX_WAIT_TIME"] == "0"


JUDGE = """
import copy, json
import bench.same_work_locustfile as plain
from apis.contract import payment_check


def answers(sent):
    # An echo that passes, and one answer for each way the binding's check can fail.
    good = {"id": "pay_1", "status": "succeeded", "amount": sent["amount"], "currency": sent["currency"],
            "card": {"brand": "visa", "last4": sent["card"]["number"][-4:]}, "refunded_amount": 0}
    bad = {
        "amount": {"amount": sent["amount"] + 1},
        "currency": {"currency": "XXX"},
        "last4": {"card": {"last4": "0000"}},
        "card not an object": {"card": "visa"},
        "status": {"status": "pending"},
        "full card number": {"card": {"last4": sent["card"]["number"][-4:], "number": sent["card"]["number"]}},
    }
    out = {"good": good, **{name: {**copy.deepcopy(good), **change} for name, change in bad.items()}}
    for field in ("id", "refunded_amount", "card"):
        out["no " + field] = {k: v for k, v in good.items() if k != field}
    return out


verdicts = []
for sent in plain.BODIES:
    for name, answer in answers(sent).items():
        verdicts.append([name, payment_check(sent)(answer), plain.problem(201, json.dumps(answer), answer, sent)])
    verdicts.append(["status 200", "not 201", plain.problem(200, "{}", {}, sent)])
print(json.dumps(verdicts))
"""


def test_plain_row_judges_answers_as_the_binding_does(tmp_path: Path) -> None:
    write_bodies(tmp_path / "bodies", 20)
    verdicts = in_subprocess(JUDGE, env={**os.environ, "BENCH_BODIES": str(tmp_path / "bodies")})
    assert len(verdicts) == 20 * 11
    for name, binding, plain in verdicts:
        assert (binding is None) == (plain is None), (name, binding, plain)
        assert (plain is None) == (name == "good"), (name, plain)


class FakeTarget:
    """Stands in for bench.common.Nginx: answers logged at known times after the launch."""

    def __init__(self) -> None:
        self.launch = 0.0

    def log_size(self) -> int:
        self.launch = time.time()
        return 0

    def answered(self, offset: int) -> list[tuple[float, int]]:
        first = self.launch + 0.3
        rows = [(self.launch + 0.1, 200)]  # a start-up probe before the first payment
        rows += [(first + i * 0.010, 201) for i in range(100)]  # 100/s for 1 s
        rows += [(first + 1.0 + i * 0.005, 201) for i in range(200)]  # then 200/s for 1 s
        return rows

    def worker_cpu_s(self) -> float:
        return 0.0


@pytest.mark.skipif(not shutil.which("taskset"), reason="needs taskset (util-linux)")
def test_window_opens_after_the_first_payment_and_counts_what_is_inside() -> None:
    """Window [first 201 + 0.5 s, + 1 s): 50 answers at 100/s, then 100 at 200/s = 150. Cut from
    the start-up probe instead (0.2 s earlier), it would hold 70 + 60 = 130."""
    run = common.windowed_run(
        [common.PY, "-c", "import time; time.sleep(2.6)"], "0", FakeTarget(), warmup=0.5, seconds=1.0
    )
    assert run["requests"] == 150 and run["rps"] == 150.0
    assert run["non_201_in_window"] == 0
    assert run["generator_core_busy"] < 0.5  # a sleeping process: the CPU read is of the generator alone


@pytest.mark.skipif(not shutil.which("taskset"), reason="needs taskset (util-linux)")
def test_a_generator_that_stops_inside_the_window_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="stopped sending"):
        common.windowed_run([common.PY, "-c", "pass"], "0", FakeTarget(), warmup=1.5, seconds=1.0)


def test_ratios_put_the_suite_on_top_and_cpu_the_right_way_up() -> None:
    """A suite that does 900 req/s on 110 us per request against plain Locust's 1,000 on 100 us is
    0.9 of it both ways (more CPU per request is less throughput per core)."""

    def run(rps: float, cpu_us: float, busy: float = 1.0) -> dict:
        return {"rps": rps, "cpu_us_per_request": cpu_us, "generator_core_busy": busy}

    runs = {
        "suite": [run(900, 110), run(450, 110, 0.5), run(900, 110)],
        "plain_locust": [run(1000, 100), run(1000, 100), run(500, 99, 0.5)],
        "k6": [run(1800, 55)] * 3,
        "suite_with_reports": [run(800, 125)] * 3,
    }
    figures = generator.summarize(runs)
    suite = figures["ratios"]["suite_to_plain_locust"]
    assert suite["req_s"] == 0.9 and suite["per_round"] == [0.9, 0.45, 1.8] and suite["per_round_median"] == 0.9
    assert suite["cpu"] == round(100 / 110, 3)
    assert figures["ratios"]["suite_to_k6"]["cpu"] == 0.5
    assert figures["median_requests_per_cpu_second"]["suite"] == 9091
    assert figures["contended"]
