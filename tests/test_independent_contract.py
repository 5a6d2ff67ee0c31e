"""The suite against an independent implementation of api-contract.md (tests/fakes/contract_fake.py,
written from the page alone, with its own error codes, detail shapes and words where the page
leaves the choice): smoke, failures and race pass with zero unexpected failures, and a planted
money bug fails the verdict with the mismatch named in the money section."""

from __future__ import annotations

import pytest

from tests.fakes import ContractFake, run_against


def _run(fake: ContractFake, tmp_path, profile: str, seconds: str = "8s"):
    return run_against(fake, tmp_path, profile, "contract", seconds)


@pytest.fixture(scope="module")
def fake():
    box = ContractFake().start()
    yield box
    box.stop()


@pytest.mark.parametrize("profile", ["smoke", "failures", "race"])
def test_profile_passes_with_zero_unexpected_failures(fake, tmp_path, profile):
    r, summary = _run(fake, tmp_path, profile)
    assert r.returncode == 0, (summary["reasons"], summary["errors"][:5], r.stderr[-1500:])
    assert summary["totals"]["failures"] == 0 and summary["totals"]["requests"] > 100
    assert summary["money"]["enabled"] and summary["money"]["status"] == "reconciled", summary["money"]


def test_planted_refund_bug_fails_the_verdict_naming_it(tmp_path):
    box = ContractFake(bug="refund_overdraw").start()
    try:
        r, summary = _run(box, tmp_path, "race")
    finally:
        box.stop()
    assert r.returncode == 4  # money mismatch
    assert summary["errors_by_category"]["other"] == 0  # race failures are money_race, not other
    money = summary["money"]
    assert money["status"] == "mismatch" and money["counts"]["over_refunded"] > 0, money["counts"]
    assert any(reason.startswith("money:") and "refund" in reason for reason in summary["reasons"])
    assert "**MISMATCH**" in (tmp_path / "reports" / "race-summary.md").read_text()
