from __future__ import annotations

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
