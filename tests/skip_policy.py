"""No silent skips in CI: under CI=true a test may skip only for a reason on tests/skip_allowlist.txt.

tests/conftest.py calls these from pytest's hooks: at the end of the session every skip (collection
and run, tests/ and benchmarks/) is matched against the allow-list, any skip whose reason is not on
it sets the exit status to "tests failed", and the skip table is printed as the last lines of the log.
Locally (CI unset) nothing changes; `CI=true pytest ...` runs the check anywhere.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ALLOWLIST = Path(__file__).resolve().parent / "skip_allowlist.txt"


@dataclass(frozen=True)
class Skip:
    test: str       # node id, e.g. tests/test_report_site.py::test_site_in_chromium
    reason: str     # without pytest's "Skipped: " prefix
    allowed: bool


def enforced() -> bool:
    """True in CI: CI=true (GitHub Actions, GitLab, .ci/run) or CI=1."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def load_allowlist(path: Path = ALLOWLIST) -> list[re.Pattern]:
    """The allow-list's regular expressions; each must sit under a comment saying why it is allowed."""
    patterns, commented = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if not text:
            commented = False
        elif text.startswith("#"):
            commented = True
        else:
            if not commented:
                raise ValueError(f"{path}:{number}: {text!r} has no comment above it saying why this skip is allowed")
            try:
                patterns.append(re.compile(text))
            except re.error as err:
                raise ValueError(f"{path}:{number}: {text!r} is not a regular expression ({err})") from None
    return patterns


def skip_reason(report) -> str:
    """The reason of a skipped test or collector report, as pytest's -rs line shows it."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
    else:
        reason = str(longrepr)
    return reason.removeprefix("Skipped: ").strip()


def classify(reports, patterns: list[re.Pattern]) -> list[Skip]:
    """One Skip per skipped report (xfails are not skips), in the order pytest saw them."""
    skips = []
    for report in reports:
        if not getattr(report, "skipped", False) or hasattr(report, "wasxfail"):
            continue
        reason = skip_reason(report)
        skips.append(Skip(report.nodeid, reason, any(p.search(reason) for p in patterns)))
    return skips


def table_lines(skips: list[Skip]) -> list[str]:
    """The skip table: allowed?, test, reason; then one line saying whether the skips pass."""
    if not skips:
        return ["no test skipped"]
    width = min(max(len(s.test) for s in skips), 90)
    lines = [f"{'allowed':8} {'test':{width}}  reason"]
    lines += [f"{'yes' if s.allowed else 'NO':8} {s.test:{width}}  {s.reason}" for s in skips]
    bad = [s for s in skips if not s.allowed]
    if bad:
        lines.append(f"{len(bad)} skip(s) not on {ALLOWLIST.name}: the run FAILS (CI=true). Install what the reason "
                     f"names, or, if the skip is fine in CI, add its reason to tests/{ALLOWLIST.name} with a comment.")
    else:
        lines.append(f"{len(skips)} skip(s), all on {ALLOWLIST.name}")
    return lines


# --- pytest hooks (imported by tests/conftest.py) ---------------------------------------------------
_SKIPS_KEY = pytest.StashKey[list]()


def pytest_sessionfinish(session, exitstatus):
    """Under CI=true a skip whose reason is not on the allow-list fails the run."""
    if not enforced():
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    reports = reporter.stats.get("skipped", []) if reporter is not None else []
    skips = classify(reports, load_allowlist())
    session.config.stash[_SKIPS_KEY] = skips
    if any(not s.allowed for s in skips) and session.exitstatus in (pytest.ExitCode.OK,
                                                                    pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config):
    """The skip table, as the last lines of the log (after pytest's own counts)."""
    skips = config.stash.get(_SKIPS_KEY, None)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if skips is None or reporter is None:
        return
    reporter.write_sep("=", f"skips (CI=true: allowed only for a reason on tests/{ALLOWLIST.name})")
    for line in table_lines(skips):
        reporter.write_line(line)
