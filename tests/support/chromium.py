"""Open a local HTML page in headless Chromium and report what a person would see.

Driven over the DevTools protocol (CDP) rather than ``--dump-dom`` or
``--enable-logging`` output, because the protocol reports every failure a
page can have as a structured event, whether or not the page's own scripts
ran far enough to catch it:

- ``Runtime.exceptionThrown``: an uncaught exception (a script that did not
  parse or threw while drawing);
- ``Runtime.consoleAPICalled`` with type ``error`` / ``assert``: console errors;
- ``Log.entryAdded`` at level ``error``: the browser's own errors (a resource
  that failed to load, a blocked request, ...);
- ``Network.requestWillBeSent``: every request, so a page that reaches for
  anything but itself (a CDN) is caught even where the network is down.

Then it asks the page's DOM whether each plot is drawn (paths with data in
each plotly plot area) and takes a full-page screenshot. Chromium runs with
the flags a root user in a container needs (``--no-sandbox``), a fresh
profile directory, nothing in the background, DevTools on loopback only
(port chosen by Chromium, read from ``DevToolsActivePort``), and is ended by
pid with every process it started.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from websockets.sync.client import ClientConnection, connect

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
         "--disable-extensions", "--mute-audio", "--hide-scrollbars", "--disable-breakpad",
         "--disable-crash-reporter",
         # a container's /dev/shm is often 64 MB: a large page would crash the renderer
         "--disable-dev-shm-usage",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0")
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")

# Per plotly plot on the page: its id, traces, and the SVG paths with data its traces drew
# (plotly draws each trace in a <g class="trace">; the legend's are <g class="traces">).
_PLOTS_JS = """JSON.stringify(Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => ({
  id: gd.id,
  traces: (gd._fullData || []).length,
  drawn: Array.from(gd.querySelectorAll('g.trace path'))
           .filter(p => (p.getAttribute('d') || '').length > 2).length,
  empty_note: Array.from(gd.querySelectorAll('.annotation-text')).map(a => a.textContent).join(' ')
})))"""


@dataclass
class PageResult:
    screenshot: Path
    plots: list[dict[str, Any]]
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    text: str = ""


class ChromiumError(AssertionError):
    pass


def binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class _Session:
    """One CDP WebSocket session: calls wait for their reply, events are kept."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self._id = 0

    def call(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            msg = self._recv(deadline, f"the reply to {method}")
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise ChromiumError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def wait_event(self, method: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for ev in self.events:
            if ev.get("method") == method:
                return ev
        while True:
            msg = self._recv(deadline, method)
            if msg.get("method") == method:
                return msg

    def _recv(self, deadline: float, what: str) -> dict[str, Any]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ChromiumError(f"chromium: no {what} within the deadline")
        try:
            msg = json.loads(self.ws.recv(timeout=left))
        except TimeoutError:
            raise ChromiumError(f"chromium: no {what} within the deadline") from None
        if "method" in msg:
            self.events.append(msg)
        return msg


def _problems(events: list[dict[str, Any]]) -> tuple[list[str], list[str], list[str]]:
    errors, warnings, requests = [], [], []
    for ev in events:
        m, p = ev.get("method"), ev.get("params", {})
        if m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            errors.append(f"uncaught exception: {d.get('exception', {}).get('description') or d.get('text')}")
        elif m == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            if p.get("type") in ("error", "assert"):
                errors.append(f"console.{p.get('type')}: {text}")
            elif p.get("type") == "warning":
                warnings.append(f"console.warn: {text}")
        elif m == "Log.entryAdded":
            e = p.get("entry", {})
            line = f"{e.get('source')}: {e.get('text')} {e.get('url', '')}".strip()
            (errors if e.get("level") == "error" else warnings).append(line)
        elif m == "Network.requestWillBeSent":
            url = p.get("request", {}).get("url", "")
            requests.append(url)
            if not url.startswith(LOCAL_SCHEMES):
                errors.append(f"request off the page: {url[:200]}")
        elif m == "Network.loadingFailed":
            errors.append(f"failed to load: {p.get('errorText')} (request {p.get('requestId')})")
    return errors, warnings, requests


def open_page(page: Path, screenshot: Path, *, width: int = 1280, timeout: float = 90.0) -> PageResult:
    """Load ``page``, wait until every plotly plot has drawn (or ``timeout``),
    screenshot the whole page to ``screenshot`` and return what happened."""
    exe = binary()
    if exe is None:
        raise ChromiumError("chromium is not installed (scripts/chromium.sh install)")
    profile = Path(tempfile.mkdtemp(prefix="arbd-chromium-"))
    log = profile.parent / f"{profile.name}.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},900",
                                 "about:blank"], stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                env={**os.environ, "XDG_CONFIG_HOME": str(profile / "config"),
                                     "XDG_CACHE_HOME": str(profile / "cache")})  # crash db, caches: ours
    spawned: list[psutil.Process] = []
    browser_ws = ""
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ChromiumError(f"chromium did not open DevTools (exit {proc.poll()}): "
                                    f"{log.read_text(errors='replace')[-1500:]}")
            time.sleep(0.05)
        port_s, browser_path = port_file.read_text().split()[:2]
        port = int(port_s)
        browser_ws = f"ws://127.0.0.1:{port}{browser_path}"
        with contextlib.suppress(psutil.Error):
            spawned = psutil.Process(proc.pid).children(recursive=True)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            targets = json.load(r)
        ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page")
        with connect(ws_url, max_size=None, open_timeout=15) as ws:
            return _visit(_Session(ws), page, screenshot, width, timeout)
    finally:
        _end(proc, spawned, browser_ws)
        shutil.rmtree(profile, ignore_errors=True)
        log.unlink(missing_ok=True)


def _visit(session: _Session, page: Path, screenshot: Path, width: int, timeout: float) -> PageResult:
    for domain in ("Runtime", "Log", "Network", "Page"):
        session.call(f"{domain}.enable")
    session.call("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1,
                 mobile=False)
    session.call("Page.navigate", url=page.resolve().as_uri())
    session.wait_event("Page.loadEventFired", timeout)
    plots = _wait_plots(session, time.monotonic() + timeout)
    text = session.call("Runtime.evaluate", expression="document.body.innerText",
                        returnByValue=True)["result"].get("value", "")
    metrics = session.call("Page.getLayoutMetrics")
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    shot = session.call("Page.captureScreenshot", timeout=timeout, format="png", captureBeyondViewport=True,
                        clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    errors, warnings, requests = _problems(session.events)
    return PageResult(screenshot=screenshot, plots=plots, errors=errors, warnings=warnings,
                      requests=requests, text=text)


def _wait_plots(session: _Session, deadline: float) -> list[dict[str, Any]]:
    """Until every plot on the page has drawn its traces. Each plot's div is
    marked as one as its inline script runs, before the load event; the
    drawing itself may finish after it."""
    plots: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        res = session.call("Runtime.evaluate", expression=_PLOTS_JS, returnByValue=True)
        plots = json.loads(res["result"].get("value") or "[]")
        if all(p["drawn"] > 0 or not p["traces"] for p in plots):
            return plots
        time.sleep(0.1)
    return plots


def _end(proc: subprocess.Popen[bytes], spawned: list[psutil.Process], browser_ws: str) -> None:
    """Close the browser (it then ends its own processes and reaps them), else
    stop it by pid; then end any process of its own still alive, by pid."""
    if browser_ws and proc.poll() is None:
        with contextlib.suppress(Exception), connect(browser_ws, open_timeout=5) as ws:
            ws.send(json.dumps({"id": 1, "method": "Browser.close"}))
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    with contextlib.suppress(psutil.Error):
        spawned += [c for c in psutil.Process(proc.pid).children(recursive=True) if c not in spawned]
    alive = [p for p in spawned if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=5)
