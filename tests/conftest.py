from __future__ import annotations

import os

import pytest

from tests.helpers import AUTH, Sandbox


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    """One sandbox shared by tests that only add data (each test uses its own merchant ids)."""
    box = Sandbox(tmp_path_factory.mktemp("sandbox-data")).start()
    yield box
    box.stop()


@pytest.fixture
def fresh_sandbox(tmp_path):
    """A sandbox of the test's own, for tests that change faults or restart it."""
    box = Sandbox(tmp_path / "data")
    yield box
    box.stop()


@pytest.fixture
def http():
    import requests

    with requests.Session() as s:
        s.headers.update(AUTH)
        yield s


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a skip is a failure: CI installs every tool the tests use (.ci/run), so a test
    that skips there means a missing install step or a broken tool, and must not pass unnoticed.
    Locally a skip stays a skip, and its reason says what to install."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI") == "true" and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true (CI must run every test): {reason}"
