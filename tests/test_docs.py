"""The docs cannot drift from the code.

Every command, variable, flag and link quoted in ``README.md`` and ``docs/*.md`` must exist:

- ``./scripts/run_tests.sh <word>`` names a profile of ``profiles.toml`` or a runner command
  (``profiles.COMMANDS``); the profile after ``ui`` / ``compare`` / ``history`` is a real one.
- ``NAME=value`` in a code span or block, and every variable in a table of
  ``docs/configuration.md``, is a field of ``config.Settings`` or on the small allowlist below.
- every ``--flag`` given to ``locust``, the runner or ``python -m sandbox`` is one their ``--help``
  lists (a code span that is just a flag may also be a benchmark's or docker compose's).
- every relative link (and ``#anchor``) points at a file (and heading) of this repository.
- the generated tables are current: the profile table of ``docs/profiles.md`` is
  ``python -m profiles markdown``; the settings tables of ``docs/configuration.md`` are built from
  ``config.Settings.model_fields``. Regenerate both with ``.venv/bin/python -m tests.test_docs --write``.
- the README's test command is the one ``.ci/run`` runs.

Each failure names the doc and the reference, one line each.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS_DIR = ROOT / "docs"

# Variables a doc may set that are not fields of config.Settings. Kept small on purpose:
#   SANDBOX_*   the sandbox's own variables (`python -m sandbox`), only the ones its code reads
#   OTEL_*      OpenTelemetry's SDK reads its own variables (METRICS_SINK=otel)
#   DD_API_KEY  read by the Datadog agent, never by the suite
#   LOCUST_*    Locust's own: LOCUST_<OPTION> for an option `locust --help` lists
# WEB_* is not on the list: every WEB_* variable the suite reads is a Settings field.
OTHER_VARIABLES = {"DD_API_KEY"}
OTHER_PREFIXES = ("OTEL_",)
# Arguments of the runner itself (not passed to Locust).
RUNNER_FLAGS = {"--json", "--help", "-h"}
# A code span that is only a flag may also be docker compose's (`--profile volume-test`).
COMPOSE_FLAGS = {"--profile", "--scale"}

SETTINGS_BEGIN, SETTINGS_END = "<!-- settings:begin -->", "<!-- settings:end -->"
PROFILES_BEGIN, PROFILES_END = "<!-- profiles:begin -->", "<!-- profiles:end -->"
REGENERATE = ".venv/bin/python -m tests.test_docs --write"
LOCUST_HELP = "locust --help (nor the suite's options.py)"


def doc_files() -> list[Path]:
    return [README, *sorted(DOCS_DIR.glob("*.md"))]


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# --- what the code offers ---------------------------------------------------------------------


def _run(*args: str) -> str:
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"{' '.join(args)} failed: {out.stderr[-2000:]}"
    return out.stdout


@functools.cache
def profile_names() -> set[str]:
    return set(_run(sys.executable, "-m", "profiles", "names").split())


@functools.cache
def runner_commands() -> set[str]:
    import profiles

    return set(profiles.COMMANDS) | set(profiles.docker_commands(profiles.load()))


@functools.cache
def settings_variables() -> set[str]:
    from config import Settings

    return {name.upper() for name in Settings.model_fields}


@functools.cache
def sandbox_variables() -> set[str]:
    return {v for f in (ROOT / "sandbox").glob("*.py") for v in re.findall(r"\bSANDBOX_[A-Z0-9_]+", f.read_text())}


def _flags(help_text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", help_text))


# Locust prints --help before it imports the locustfile, so its help lacks the suite's own options
# (options.py); those come from Locust's parser with options.py's listener registered.
_SUITE_HELP = "import options; from locust.argument_parser import get_parser; print(get_parser().format_help())"


@functools.cache
def locust_flags() -> set[str]:
    listed = _flags(_run(sys.executable, "-m", "locust", "-f", "locustfile.py", "--help"))
    return listed | _flags(_run(sys.executable, "-c", _SUITE_HELP))


_LOCUST_ENV = "from locust.argument_parser import get_parser\nfor a in get_parser()._actions:\n"
_LOCUST_ENV += "    print(getattr(a, 'env_var', '') or '')"


@functools.cache
def locust_env_variables() -> set[str]:
    """Variables Locust's own parser reads that are not LOCUST_<OPTION> (e.g. --otel's)."""
    return set(_run(sys.executable, "-c", _LOCUST_ENV).split())


@functools.cache
def sandbox_flags() -> set[str]:
    return _flags(_run(sys.executable, "-m", "sandbox", "--help"))


@functools.cache
def bench_flags() -> set[str]:
    return {
        f
        for p in (ROOT / "bench").glob("*.py")
        for f in re.findall(r"add_argument\(\s*\"(--[a-z0-9-]+)\"", p.read_text())
    }


def variable_problem(name: str) -> str | None:
    """None when a doc may set ``name``; else why not."""
    if name in settings_variables() or name in OTHER_VARIABLES or name.startswith(OTHER_PREFIXES):
        return None
    if name.startswith("SANDBOX_"):
        if name in sandbox_variables():
            return None
        return "the sandbox reads no such variable (sandbox/*.py)"
    if name.startswith("LOCUST_"):
        option = "--" + name.removeprefix("LOCUST_").lower().replace("_", "-")
        if option in locust_flags() or name in locust_env_variables():
            return None
        return f"Locust has no option {option} (locust --help)"
    return "not a field of config.Settings, nor on tests/test_docs.py's allowlist"


# --- reading markdown -------------------------------------------------------------------------

_FENCE = re.compile(r"^(```|~~~)[^\n]*\n(.*?)^\1[ \t]*$", re.M | re.S)
_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
_COMMENT = re.compile(r"<!--.*?-->", re.S)


def code_pieces(text: str) -> list[str]:
    """Code of a markdown text: each command line of its fenced blocks (continuations joined),
    then each inline code span."""
    text = _COMMENT.sub("", text)
    pieces = []
    for block in _FENCE.finditer(text):
        pieces += block.group(2).replace("\\\n", " ").splitlines()
    prose = _FENCE.sub("", text)
    pieces += [m.group(2).strip() for m in _SPAN.finditer(prose)]
    return [p for p in pieces if p.strip()]


def prose_of(text: str) -> str:
    """The text without code blocks, code spans and comments (where links live)."""
    return _SPAN.sub("", _FENCE.sub("", _COMMENT.sub("", text)))


def _strip_comment(line: str) -> str:
    return re.sub(r"(^|\s)#.*$", "", line)


def commands(piece: str) -> list[list[str]]:
    """The shell commands of one line of code: words, split at ; && || | &."""
    out = []
    for segment in re.split(r"\s*(?:&&|\|\||;|\||&(?!\S))\s*", _strip_comment(piece)):
        words = segment.split()
        if words and words[0] == "$":
            words.pop(0)  # a shell prompt in a pasted session
        while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=\S*", words[0]):
            words.pop(0)  # NAME=value before the program
        if words:
            out.append(words)
    return out


def program(words: list[str]) -> str:
    """'locust', 'runner', 'sandbox' or '' for a command the checks leave alone."""
    first = words[0].rsplit("/", 1)[-1]
    if first == "locust":
        return "locust"
    if first == "run_tests.sh":
        return "runner"
    if re.fullmatch(r"python[0-9.]*", first) and len(words) > 2 and words[1] == "-m":
        return {"locust": "locust", "sandbox": "sandbox"}.get(words[2], "")
    return ""


def _placeholder(word: str) -> bool:
    return bool(re.match(r"[<\[$\"'{…(]", word)) or word in ("...", "…")


# --- the checks: each returns one line per problem ----------------------------------------------


def check_runner_words(doc: str, text: str) -> list[str]:
    known = profile_names() | runner_commands()
    problems = []
    for piece in code_pieces(text):
        for m in re.finditer(r"run_tests\.sh\s+([^\s`|)]+)(?:\s+([^\s`|)]+))?", _strip_comment(piece)):
            word, arg = m.group(1), m.group(2)
            if _placeholder(word) or word in RUNNER_FLAGS:
                continue
            if word not in known:
                problems.append(
                    f"{doc}: `{m.group(0)}`: '{word}' is neither a profile of profiles.toml nor a runner command"
                )
            elif (
                word in ("ui", "compare", "history")
                and arg
                and not arg.startswith("-")
                and not _placeholder(arg)
                and arg not in profile_names()
            ):
                problems.append(f"{doc}: `{m.group(0)}`: '{arg}' is not a profile of profiles.toml")
    return problems


_ASSIGNMENT = re.compile(r"(?<![\w$./{-])([A-Z][A-Z0-9_]*)=(?!=)")


def check_variables(doc: str, text: str) -> list[str]:
    problems = []
    for piece in code_pieces(text):
        for name in _ASSIGNMENT.findall(piece):
            why = variable_problem(name)
            if why:
                problems.append(f"{doc}: `{name}=` in `{piece.strip()[:80]}`: {why}")
    return problems


def table_variables(text: str) -> list[str]:
    """Variable names in code spans of table rows (what docs/configuration.md documents)."""
    names = []
    for line in _FENCE.sub("", text).splitlines():
        if line.lstrip().startswith("|"):
            names += [
                m.group(2)
                for m in _SPAN.finditer(line)
                if re.fullmatch(r"[A-Z][A-Z0-9]*_[A-Z0-9_]+|[A-Z]{4,}", m.group(2))
            ]
    return names


def check_table_variables(doc: str, text: str) -> list[str]:
    problems = []
    for name in table_variables(text):
        why = variable_problem(name)
        if why:
            problems.append(f"{doc}: table row names `{name}`: {why}")
    return problems


def check_flags(doc: str, text: str) -> list[str]:
    problems = []
    for piece in code_pieces(text):
        stripped = _strip_comment(piece).strip()
        if stripped.startswith("--"):  # a span that is only a flag, e.g. `--steady-warmup`
            flag = stripped.split()[0].split("=")[0]
            anywhere = locust_flags() | sandbox_flags() | bench_flags() | RUNNER_FLAGS | COMPOSE_FLAGS
            if flag not in anywhere:
                problems.append(
                    f"{doc}: `{stripped[:60]}`: {flag} is an option of neither locust, the runner, "
                    "python -m sandbox, the benchmarks nor docker compose"
                )
            continue
        for words in commands(piece):
            kind = program(words)
            if not kind:
                continue
            allowed = {
                "locust": locust_flags(),
                "runner": locust_flags() | RUNNER_FLAGS,
                "sandbox": sandbox_flags(),
            }[kind]
            for word in words:
                flag = word.split("=")[0]
                if re.fullmatch(r"--[a-z][a-z0-9-]*", flag) and flag not in allowed:
                    where = {"locust": LOCUST_HELP, "runner": LOCUST_HELP, "sandbox": "python -m sandbox --help"}
                    problems.append(f"{doc}: `{' '.join(words)[:90]}`: {flag} is not listed by {where[kind]}")
    return problems


def github_anchor(heading: str) -> str:
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    found, seen = set(), {}
    for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", _FENCE.sub("", text), re.M):
        slug = github_anchor(m.group(1))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        found.add(slug if n == 0 else f"{slug}-{n}")
    return found


_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def check_links(path: Path, text: str) -> list[str]:
    doc, problems = rel(path), []
    for target in _LINK.findall(prose_of(text)):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if ROOT not in dest.parents and dest != ROOT:
            problems.append(f"{doc}: link ({target}) leaves the repository (it breaks on any other checkout)")
        elif dest != path and not dest.exists():
            problems.append(f"{doc}: link ({target}): {file_part} does not exist")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(text if dest == path else dest.read_text()):
            problems.append(f"{doc}: link ({target}): {rel(dest)} has no heading with anchor #{anchor}")
    return problems


def between(text: str, begin: str, end: str) -> str | None:
    m = re.search(re.escape(begin) + r"\n(.*?)\n?" + re.escape(end), text, re.S)
    return m.group(1).strip("\n") if m else None


# --- generated tables -------------------------------------------------------------------------


def profiles_markdown() -> str:
    return _run(sys.executable, "-m", "profiles", "markdown").strip("\n")


def _allowed(field) -> str:
    """What a field accepts, from its type and constraints."""
    from pydantic import SecretStr

    ann = field.annotation
    optional = typing.get_origin(ann) in (typing.Union, types.UnionType)
    base = next(a for a in typing.get_args(ann) if a is not type(None)) if optional else ann
    funcs = {getattr(getattr(m, "func", None), "__name__", "") for m in field.metadata}
    if typing.get_origin(base) is typing.Literal:
        return ", ".join(f"`{a}`" for a in typing.get_args(base))
    if funcs & {"_url", "_optional_url"}:
        return "http:// or https:// URL"
    if "_duration" in funcs:
        return "duration: `90s`, `5m`, `1h30m`"
    if base is bool:
        return "`true` / `false` (also `yes`/`no`, `1`/`0`)"
    if base is SecretStr:
        return "text (secret: never printed)"
    low = high = None
    open_low = False
    for m in field.metadata:
        if hasattr(m, "ge"):
            low = m.ge
        if hasattr(m, "gt"):
            low, open_low = m.gt, True
        if hasattr(m, "le"):
            high = m.le
    kind = "integer" if base is int else "number" if base is float else "text"
    if low is None and high is None:
        pattern = next((m.pattern for m in field.metadata if getattr(m, "pattern", None)), None)
        if pattern:
            return f"{kind} matching `{pattern}`".replace("|", "\\|")
        non_empty = any(getattr(m, "min_length", 0) for m in field.metadata)
        return kind + (", not empty" if non_empty else "")

    def fmt(v: float) -> str:
        return f"{int(v):,}".replace(",", " ") if float(v).is_integer() else f"{v:g}"

    if low is not None and high is not None:
        return f"{kind}, {fmt(low)} {'<' if open_low else '≤'} x ≤ {fmt(high)}"
    return f"{kind}, {'>' if open_low else '≥'} {fmt(low)}" if low is not None else f"{kind}, ≤ {fmt(high)}"


def _default(field) -> str:
    from pydantic import SecretStr

    value = field.default
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    if value == "":
        return "empty"
    return f"`{value}`"


def settings_groups() -> list[tuple[str, str, list[str]]]:
    """(heading, config.py's comment, field names) in config.py's order."""
    from config import Settings

    groups: list[tuple[str, str, list[str]]] = []
    source = (ROOT / "config.py").read_text().split("class Settings", 1)[1]
    for line in source.splitlines():
        head = re.match(r"\s+# --- (.+)", line)
        field = re.match(r"\s{4}([a-z_][a-z0-9_]*)\s*:", line)
        if head:
            title = re.split(r" \(|; |: ", head.group(1), maxsplit=1)[0]
            groups.append((title, head.group(1), []))
        elif field and field.group(1) in Settings.model_fields and groups:
            groups[-1][2].append(field.group(1))
    return groups


def settings_markdown() -> str:
    from config import Settings

    fields = Settings.model_fields
    lines: list[str] = []
    for title, comment, names in settings_groups():
        lines += [f"### {title}", ""]
        if comment != title:
            lines += [f"_{comment}_", ""]
        lines += ["| variable | default | allowed | meaning |", "|---|---|---|---|"]
        for n in names:
            f = fields[n]
            lines.append(f"| `{n.upper()}` | {_default(f)} | {_allowed(f)} | {f.description or ''} |")
        lines.append("")
    return "\n".join(lines).strip("\n")


def write_generated() -> None:
    """Rewrite the generated blocks of docs/profiles.md and docs/configuration.md."""
    for path, begin, end, body in (
        (DOCS_DIR / "profiles.md", PROFILES_BEGIN, PROFILES_END, profiles_markdown()),
        (DOCS_DIR / "configuration.md", SETTINGS_BEGIN, SETTINGS_END, settings_markdown()),
    ):
        text = path.read_text()
        block = f"{begin}\n{body}\n{end}"
        new = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _m, block=block: block, text, flags=re.S)
        path.write_text(new)
        print(f"{rel(path)}: {'updated' if new != text else 'unchanged'}")


# --- tests ------------------------------------------------------------------------------------


def _report(problems: list[str]) -> None:
    assert not problems, f"{len(problems)} doc reference(s) do not match the code:\n" + "\n".join(problems)


@pytest.fixture(scope="module")
def docs() -> list[tuple[Path, str]]:
    return [(p, p.read_text()) for p in doc_files()]


def test_runner_commands_exist(docs):
    _report([p for path, text in docs for p in check_runner_words(rel(path), text)])


def test_variables_are_settings(docs):
    problems = [p for path, text in docs for p in check_variables(rel(path), text)]
    config_doc = DOCS_DIR / "configuration.md"
    if config_doc.is_file():
        problems += check_table_variables(rel(config_doc), config_doc.read_text())
    _report(problems)


def test_flags_exist(docs):
    _report([p for path, text in docs for p in check_flags(rel(path), text)])


def test_links_resolve(docs):
    _report([p for path, text in docs for p in check_links(path, text)])


def test_profile_table_is_generated():
    doc = DOCS_DIR / "profiles.md"
    table = between(doc.read_text(), PROFILES_BEGIN, PROFILES_END)
    assert table is not None, f"docs/profiles.md: no {PROFILES_BEGIN} ... {PROFILES_END} block"
    assert table == profiles_markdown(), (
        f"docs/profiles.md: the profile table differs from `python -m profiles markdown`; run {REGENERATE}"
    )


def test_settings_tables_are_generated():
    doc = DOCS_DIR / "configuration.md"
    tables = between(doc.read_text(), SETTINGS_BEGIN, SETTINGS_END)
    assert tables is not None, f"docs/configuration.md: no {SETTINGS_BEGIN} ... {SETTINGS_END} block"
    documented = set(table_variables(tables))
    missing = sorted(settings_variables() - documented)
    assert not missing, f"docs/configuration.md: no table row for {', '.join(missing)}; run {REGENERATE}"
    assert tables == settings_markdown(), (
        f"docs/configuration.md: the settings tables differ from config.Settings; run {REGENERATE}"
    )


def test_readme_runs_the_ci_test_command():
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("./scripts/")]
    assert ci, ".ci/run: no ./scripts/ command found"
    readme = README.read_text()
    quoted = {_strip_comment(p).strip() for p in code_pieces(readme)}
    for command in [*ci, "./scripts/run_tests.sh smoke"]:
        assert command in quoted, f"README.md: the quick start does not quote `{command}` (what .ci/run runs)"


def test_the_checks_catch_drift():
    """The checker itself: a doc with one bad reference of each kind is reported, line by line."""
    bad = (
        "Run `./scripts/run_tests.sh smok` or `./scripts/run_tests.sh compare nosuch`.\n\n"
        "```bash\nNO_SUCH_SETTING=1 .venv/bin/locust -f locustfile.py --no-such-flag\n"
        "SANDBOX_NOPE=1 python -m sandbox --bogus\n$ DRY_RUN=1 ./scripts/run_tests.sh smoke --prompted-bogus\n```\n\n"
        "See [gone](missing.md), [up](../../outside.md) and [here](#nowhere).\n\n"
        "| variable |\n|---|\n| `NOT_A_SETTING` |\n"
    )
    found = (
        check_runner_words("bad.md", bad)
        + check_variables("bad.md", bad)
        + check_table_variables("bad.md", bad)
        + check_flags("bad.md", bad)
    )
    text = "\n".join(found)
    for ref in (
        "'smok'",
        "'nosuch'",
        "NO_SUCH_SETTING=",
        "SANDBOX_NOPE=",
        "NOT_A_SETTING",
        "--no-such-flag",
        "--bogus",
        "--prompted-bogus",
    ):
        assert ref in text, f"the checks missed {ref}:\n{text}"
    good = "`./scripts/run_tests.sh smoke`, `USERS=5 DRY_RUN=1 ./scripts/run_tests.sh basic --tags payments`"
    assert not check_runner_words("ok.md", good) + check_variables("ok.md", good) + check_flags("ok.md", good)
    # links are resolved against the repository root, so check them on a doc inside it
    links = check_links(DOCS_DIR / "bad.md", bad)
    assert len(links) == 3, links


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_generated()
    else:
        print(__doc__)
        print(f"usage: {REGENERATE}")
