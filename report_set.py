"""A run's report files in REPORT_DIR, never a mix of two runs (used by ``scripts/run_tests.sh``).

``aside PROFILE DIR`` moves the previous run's files of the profile (``<profile>-*``, ``<profile>_*``,
``<profile>.*``) into ``DIR/.previous-<profile>/`` just before Locust starts. ``finish PROFILE DIR``
runs after it: when the new run wrote its summary (its set is complete) the previous files are
dropped; otherwise the new run's files move to ``DIR/.failed-<profile>/`` (for its logs) and the
previous ones come back, byte for byte.
A runner that died between the two leaves the folder aside: the next ``aside`` puts it back first.
Files shared by every run (``history.jsonl``, ``baselines/``, ``sandbox.log``) are not a run's set."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

ASIDE = ".previous-{profile}"
FAILED = ".failed-{profile}"  # the last run that ended without a summary: its partial files


def run_files(profile: str, folder: Path, profiles: list[str]) -> list[Path]:
    """The files of ``profile``'s run in ``folder`` (not those of a longer profile name: ``rate``
    does not own ``rate-distributed-summary.json``)."""
    own = re.compile(re.escape(profile) + r"[-_.]")
    longer = [re.compile(re.escape(p) + r"[-_.]") for p in profiles if p != profile and p.startswith(profile)]
    if not folder.is_dir():
        return []
    return sorted(
        f for f in folder.iterdir() if f.is_file() and own.match(f.name) and not any(o.match(f.name) for o in longer)
    )


def _restore(profile: str, folder: Path, profiles: list[str]) -> None:
    """The incomplete run's files into ``.failed-<profile>/`` (its logs say why it failed), the
    previous run's back in their place."""
    partial = run_files(profile, folder, profiles)
    if partial:
        failed = folder / FAILED.format(profile=profile)
        shutil.rmtree(failed, ignore_errors=True)
        failed.mkdir()
        for f in partial:
            f.replace(failed / f.name)
    aside = folder / ASIDE.format(profile=profile)
    if aside.is_dir():
        for f in aside.iterdir():
            f.replace(folder / f.name)
        aside.rmdir()


def set_aside(profile: str, folder: Path, profiles: list[str]) -> None:
    if (folder / ASIDE.format(profile=profile)).is_dir():  # a runner that died mid-run: its previous set back first
        _restore(profile, folder, profiles)
    files = run_files(profile, folder, profiles)
    if not files:
        return
    aside = folder / ASIDE.format(profile=profile)
    aside.mkdir()
    for f in files:
        f.replace(aside / f.name)


def finish(profile: str, folder: Path, profiles: list[str]) -> bool:
    """True when the new run's set stays (it wrote its summary); False when the previous one came back."""
    if (folder / f"{profile}-summary.json").is_file():
        for leftover in (ASIDE, FAILED):
            shutil.rmtree(folder / leftover.format(profile=profile), ignore_errors=True)
        return True
    _restore(profile, folder, profiles)
    return False


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3 or args[0] not in ("aside", "finish"):
        print("usage: python -m report_set aside|finish PROFILE REPORT_DIR", file=sys.stderr)
        return 2
    import profiles

    what, profile, folder = args[0], args[1], Path(args[2])
    names = list(profiles.load())
    if what == "aside":
        set_aside(profile, folder, names)
        return 0
    had_previous = (folder / ASIDE.format(profile=profile)).is_dir()
    if not finish(profile, folder, names):
        kept = f"the previous run's {profile} files are back" if had_previous else f"no {profile} files are left"
        failed = folder / FAILED.format(profile=profile)
        print(f"reports: the run wrote no summary; {kept} (its partial files: {failed}/)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
