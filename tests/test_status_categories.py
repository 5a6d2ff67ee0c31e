"""Failure categories follow the status class: a 200 where 201 was expected is not a "4xx"."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import ROOT

# (status, statuses the request expected, category in the summary)
CASES = [
    (200, {201: None}, "2xx_unexpected"),
    (204, {201: None}, "2xx_unexpected"),
    (201, {422: "validation_error"}, "2xx_unexpected"),  # bad input accepted
    (301, {200: None}, "3xx_unexpected"),
    (304, {201: None}, "3xx_unexpected"),
    (404, {200: None}, "4xx_unexpected"),
    (409, {201: None}, "4xx_unexpected"),
    (400, {422: "validation_error"}, "wrong_error"),
    (500, {201: None}, "5xx"),
    (503, {422: "validation_error"}, "5xx"),  # a server error whatever was expected
    (0, {201: None}, "connection"),
]

SCRIPT = """
import json, sys
from locust.stats import RequestStats  # noqa: F401 - gevent patches first
from reporting.summary import CATEGORIES, categorize
from users.base import PaymentSuiteUser

class Resp:
    content = b""
    error = ConnectionRefusedError("refused")

out = []
for status, expect in json.loads(sys.argv[1]):
    expect = {int(k): v for k, v in expect.items()}
    reason = PaymentSuiteUser._verdict(status, Resp(), None, expect, None)
    out.append([reason, categorize(reason), categorize(reason) in CATEGORIES])
print(json.dumps(out))
"""


def test_every_status_class_gets_its_own_category():
    """(Locust is imported in a subprocess: it gevent-patches the interpreter.)"""
    arg = json.dumps([(status, expect) for status, expect, _ in CASES])
    r = subprocess.run([sys.executable, "-c", SCRIPT, arg], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    results = json.loads(r.stdout)
    for (status, expect, category), (reason, got, listed) in zip(CASES, results, strict=True):
        assert got == category and listed, (status, expect, reason, got)
