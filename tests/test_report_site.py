"""The static site and a run report in headless Chromium, driven over the DevTools protocol.

Chromium is started with --remote-debugging-pipe: DevTools JSON messages go over file
descriptors 3 (to the browser) and 4 (from it), NUL-terminated, so no WebSocket library or
driver is needed. The test skips when /usr/bin/chromium is absent
(install: apt-get install -y chromium).
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cnnlab.evaluate.examples import example_groups
from cnnlab.report import write_run_report
from cnnlab.report.blocks import Section, Table, render_html
from cnnlab.report.site import INDEX_HEADERS, _index_row, build_site
from cnnlab.runfolder import RunData, RunFolderError, load_run_data
from report_fixtures import RealRuns, copy_run, read_summary, real_runs

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(),
                                    reason="headless Chromium absent: apt-get install -y chromium")
BROWSER_TIMEOUT_S = 30.0


class Browser:
    """A headless Chromium page controlled over the DevTools pipe."""

    def __init__(self, profile_dir: Path) -> None:
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--allow-file-access-from-files", f"--user-data-dir={profile_dir}", "--remote-debugging-pipe"]
        def _wire_fds() -> None:
            # In the child only: our pipe ends become fds 3 and 4, inheritable so they survive exec
            # (every other Python fd is close-on-exec). Copy first so 3/4 never clobber a source;
            # a copy may itself land on 3 or 4, where dup2 is a no-op that keeps close-on-exec,
            # hence the explicit set_inheritable.
            read_copy, write_copy = os.dup(to_browser_read), os.dup(from_browser_write)
            os.dup2(read_copy, 3)
            os.dup2(write_copy, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)
        self._process = subprocess.Popen([str(CHROMIUM), *flags, "about:blank"], preexec_fn=_wire_fds,
                                         close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self._session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._from_browser], [], [], remaining)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe (did it crash?)")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict[str, Any] | None = None, session: bool = False) -> dict[str, Any]:
        """Send one DevTools command and return its result, queueing events that arrive meanwhile."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self._session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + BROWSER_TIMEOUT_S
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method} failed: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for_event(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + BROWSER_TIMEOUT_S
        while True:
            for event in self.events:
                if event.get("method") == method:
                    self.events.remove(event)
                    return event
            self.events.append(self._read_message(deadline))

    def open(self, path: Path) -> None:
        """Load a local file and wait for its load event (all images fetched)."""
        self.events.clear()
        self.call("Page.navigate", {"url": path.resolve().as_uri()}, session=True)
        self.wait_for_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def console_errors(self) -> list[str]:
        """Uncaught exceptions, console.error calls and error log entries seen since the last open()."""
        errors = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                errors.append(f"{details.get('text')} {(details.get('exception') or {}).get('description', '')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                errors.append(json.dumps(params.get("args"))[:500])
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                errors.append(params["entry"].get("text", ""))
        return errors

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    if not CHROMIUM.exists():
        pytest.skip("headless Chromium absent: apt-get install -y chromium")
    instance = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield instance
    instance.close()


ALL_IMAGES_DECODED = ("Array.from(document.images).every(function (i) { return i.complete && i.naturalWidth > 0; })"
                      " && document.images.length")
COLUMN_TEXT = "Array.from(document.querySelectorAll('#runs tbody tr')).map(function (r) {{ return r.cells[{col}].textContent; }})"


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> RealRuns:
    return real_runs(tmp_path_factory)


@pytest.fixture(scope="module")
def site(real: RealRuns, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three real runs (two seeds of "tiny", one 1-epoch "binary" without validation) built into a site;
    returns index.html. The runs sit one folder deeper (runs/a/<run>, ...), as nested runs may."""
    root = tmp_path_factory.mktemp("site-test")
    for sub, run in (("a", real.base), ("b", real.seed2), ("d", real.binary)):
        copy_run(run, root / "runs" / sub)
    return build_site(root / "runs", root / "site")


def _percent(run_dir: Path, key: str = "test_acc") -> str:
    return f"{100 * read_summary(run_dir)['final'][key]:.2f}%"


def test_build_site_writes_index_and_one_page_per_run(real: RealRuns, site: Path, tmp_path: Path) -> None:
    pages = sorted(p.name for p in (site.parent / "runs").iterdir())
    assert len(pages) == 3 and pages[0] == f"a_{real.base.name}.html"
    text = site.read_text(encoding="utf-8")
    assert all(f'href="runs/{page}"' in text for page in pages)
    accs = [read_summary(r)["final"]["test_acc"] for r in (real.base, real.seed2)]
    assert f"{100 * np.mean(accs):.2f} ± {100 * np.std(accs, ddof=1):.2f}%" in text  # tiny over two seeds
    with pytest.raises(RunFolderError, match="no run folders"):
        build_site(site.parent, tmp_path / "other")


@needs_chromium
def test_index_loads_without_errors_and_sorts_on_header_click(real: RealRuns, site: Path, browser: Browser) -> None:
    browser.open(site)
    assert browser.console_errors() == []
    test_acc_column = 8
    headers = browser.evaluate("Array.from(document.querySelectorAll('#runs th')).map(function (h) { return h.textContent; })")
    assert headers[test_acc_column] == "test acc"
    values = sorted(read_summary(r)["final"]["test_acc"] for r in (real.base, real.seed2, real.binary))
    ascending = [f"{100 * v:.2f}%" for v in values]
    browser.evaluate(f"document.querySelectorAll('#runs th')[{test_acc_column}].click()")
    assert browser.evaluate(COLUMN_TEXT.format(col=test_acc_column)) == ascending
    browser.evaluate(f"document.querySelectorAll('#runs th')[{test_acc_column}].click()")
    assert browser.evaluate(COLUMN_TEXT.format(col=test_acc_column)) == ascending[::-1]
    browser.evaluate("document.querySelectorAll('#runs th')[1].click()")  # text column
    assert browser.evaluate(COLUMN_TEXT.format(col=1)) == ["binary", "tiny", "tiny"]
    assert browser.console_errors() == []

    for page in sorted((site.parent / "runs").iterdir()):
        browser.open(page)
        assert browser.evaluate(ALL_IMAGES_DECODED) >= 4, page.name
        assert browser.console_errors() == [], page.name


# Values whose text order differs from their numeric order; None = missing (shown "—").
WALL_SECONDS = [100.0, 9.5, None, 10.2]      # text order of "1m 40s", "9.5 s", "10.2 s" is not numeric order
PARAMS = [1234, 987, 50000, None]            # "1,234" < "50,000" < "987" as text
TEXT_ONLY = [["9.5", "1,234"], ["100.0", "987"], ["-", "—"], ["10.2", "12"]]  # no data-value: parsed from text


def _sort_page(path: Path) -> Path:
    """The runs index table (real index formatting and data-values) of four runs, plus a text-only table."""
    rows, values = [], []
    for i, (wall, params) in enumerate(zip(WALL_SECONDS, PARAMS)):
        summary = {"name": "x", "status": "completed", "seed": i, "wall_seconds": wall,
                   "params": {"total": params} if params is not None else {}, "final": {"test_acc": 0.5}}
        shown, raw = _index_row(RunData(run_dir=Path(f"run{i}"), summary=summary))
        rows.append(shown)
        values.append(raw)
    tables = [Table(headers=INDEX_HEADERS, rows=rows, sort_values=values, sortable=True, table_id="runs"),
              Table(headers=["a", "b"], rows=TEXT_ONLY, sortable=True, table_id="text")]
    path.write_text(render_html("sorting", [Section("s", tables)]), encoding="utf-8")
    return path


def _click_and_read(browser: "Browser", table: str, column: int) -> list[str]:
    browser.evaluate(f"document.querySelectorAll('#{table} th')[{column}].click()")
    return browser.evaluate(f"Array.from(document.querySelectorAll('#{table} tbody tr')).map(function (r) "
                            f"{{ return r.cells[{column}].textContent; }})")


@needs_chromium
def test_sorting_is_numeric_not_textual_and_missing_values_go_last(tmp_path: Path, browser: Browser) -> None:
    browser.open(_sort_page(tmp_path / "sort.html"))
    assert browser.console_errors() == []
    wall, params = INDEX_HEADERS.index("wall time"), INDEX_HEADERS.index("params")
    assert _click_and_read(browser, "runs", wall) == ["9.5 s", "10.2 s", "1m 40s", "—"]
    assert _click_and_read(browser, "runs", wall) == ["1m 40s", "10.2 s", "9.5 s", "—"]  # descending, "—" still last
    assert _click_and_read(browser, "runs", params) == ["987", "1,234", "50,000", "—"]
    assert _click_and_read(browser, "runs", params) == ["50,000", "1,234", "987", "—"]
    assert _click_and_read(browser, "text", 0) == ["9.5", "10.2", "100.0", "-"]
    assert _click_and_read(browser, "text", 0) == ["100.0", "10.2", "9.5", "-"]
    assert _click_and_read(browser, "text", 1) == ["12", "987", "1,234", "—"]
    assert _click_and_read(browser, "text", 1) == ["1,234", "987", "12", "—"]
    assert browser.console_errors() == []


def _grids(run_dir: Path) -> int:
    test = load_run_data(run_dir).predictions["test"]
    return sum(1 for rows in example_groups(test.probs, test.labels, None, test.indices, 9).values() if rows)


@needs_chromium
def test_one_epoch_run_report_with_images_renders(real: RealRuns, tmp_path: Path, browser: Browser) -> None:
    run_dir = copy_run(real.smoke, tmp_path)  # same data and seed as base: the same test images, in order
    html_path, _ = write_run_report(run_dir, images={"test": real.test_images})
    browser.open(html_path)
    assert browser.evaluate(ALL_IMAGES_DECODED) == 2 + 6 + _grids(run_dir)
    assert browser.evaluate("document.querySelectorAll('h2').length") >= 10
    assert browser.console_errors() == []
@needs_chromium
def test_the_browser_check_catches_a_script_error(tmp_path: Path, browser: Browser) -> None:
    # guards the guard: a broken page must fail the checks above
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><html><body><img src='data:image/png;base64,AAAA'>"
                      "<script>undefinedFunction();</script></body></html>")
    browser.open(broken)
    assert any("undefinedFunction" in e for e in browser.console_errors())
    assert browser.evaluate(ALL_IMAGES_DECODED) is False
