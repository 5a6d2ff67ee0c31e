"""report_set.py: a report folder holds one run's complete set, never a mix of two (the runner's
side is tested end to end in tests/test_profiles.py)."""

from __future__ import annotations

from pathlib import Path

from report_set import finish, run_files, set_aside

PROFILES = ["smoke", "rate", "rate-distributed"]


def _files(folder: Path, names: list[str], text: str) -> dict[str, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text(f"{text} {name}")
    return {name: (folder / name).read_bytes() for name in names}


def _contents(folder: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in folder.iterdir() if f.is_file()}


def test_a_shorter_profile_name_does_not_own_a_longer_ones_files(tmp_path):
    for name in ("rate-summary.json", "rate_stats.csv", "rate-distributed-summary.json", "rates.txt", "rate.json"):
        (tmp_path / name).write_text("x")
    assert [f.name for f in run_files("rate", tmp_path, PROFILES)] == [
        "rate-summary.json",
        "rate.json",
        "rate_stats.csv",
    ]


def test_a_run_without_a_summary_puts_the_previous_set_back_byte_for_byte(tmp_path):
    previous = _files(tmp_path, ["smoke-summary.json", "smoke_stats.csv", "smoke-ledger.jsonl"], "previous")
    others = _files(tmp_path, ["history.jsonl", "rate-summary.json"], "other")  # not smoke's: never moved
    set_aside("smoke", tmp_path, PROFILES)
    assert _contents(tmp_path) == others
    _files(tmp_path, ["smoke_stats.csv", "smoke-ledger.jsonl", "smoke-worker-1.log"], "new, partial")
    assert finish("smoke", tmp_path, PROFILES) is False
    assert _contents(tmp_path) == {**previous, **others}
    assert not (tmp_path / ".previous-smoke").exists()
    assert set(_contents(tmp_path / ".failed-smoke")) == {"smoke_stats.csv", "smoke-ledger.jsonl", "smoke-worker-1.log"}


def test_a_run_with_its_summary_keeps_only_its_own_set(tmp_path):
    _files(tmp_path, ["smoke-summary.json", "smoke_stats.csv", "smoke-worker-1.log"], "previous")
    set_aside("smoke", tmp_path, PROFILES)
    new = _files(tmp_path, ["smoke-summary.json", "smoke_stats.csv"], "new")
    (tmp_path / ".failed-smoke").mkdir()  # an earlier failed run's files: stale once a run completes
    assert finish("smoke", tmp_path, PROFILES) is True
    assert _contents(tmp_path) == new and not (tmp_path / ".previous-smoke").exists()
    assert not (tmp_path / ".failed-smoke").exists()


def test_a_runner_that_died_mid_run_gets_the_previous_set_back_at_the_next_run(tmp_path):
    previous = _files(tmp_path, ["smoke-summary.json", "smoke_stats.csv"], "previous")
    set_aside("smoke", tmp_path, PROFILES)
    _files(tmp_path, ["smoke_stats.csv"], "partial")  # then the runner was killed: no finish
    set_aside("smoke", tmp_path, PROFILES)  # the next run
    assert _contents(tmp_path / ".previous-smoke") == previous  # the complete set, not the partial one
    assert finish("smoke", tmp_path, PROFILES) is False and _contents(tmp_path) == previous


def test_a_first_run_has_nothing_to_set_aside(tmp_path):
    set_aside("smoke", tmp_path / "new", PROFILES)
    assert not (tmp_path / "new").exists() or not any((tmp_path / "new").iterdir())
    assert finish("smoke", tmp_path, PROFILES) is False
