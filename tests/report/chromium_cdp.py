"""A small headless-Chromium driver for the report's browser tests (and the README screenshot).

It speaks the Chrome DevTools Protocol over `--remote-debugging-pipe` (JSON messages separated by
NUL bytes on file descriptors 3 and 4), so it needs no websocket library. It records what a
user would never see: uncaught exceptions, console errors, log errors (CSP violations, failed
loads) and JavaScript dialogs (an `alert(1)` that ran).

Usage::

    with Chromium() as browser:
        page = browser.open(Path("report.html"))
        page.wait_for("document.querySelectorAll('.main-svg').length > 0")
        page.evaluate("document.title"); page.errors; page.dialogs
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-extensions", "--mute-audio",
         "--disable-dev-shm-usage", "--remote-debugging-pipe")


def find_chromium() -> str | None:
    """The chromium binary: $MECHSCOPE_CHROMIUM, else the first of CHROMIUM_NAMES on PATH."""
    explicit = os.environ.get("MECHSCOPE_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class CDPError(RuntimeError):
    pass


class Chromium:
    """A headless Chromium process driven over the DevTools pipe."""

    def __init__(self, binary: str | None = None, timeout: float = 60.0, window: tuple[int, int] = (1280, 900)):
        self.binary = binary or find_chromium()
        if not self.binary:
            raise CDPError("no chromium binary found; run .ci/install-chromium.sh")
        self.timeout = timeout
        self.window = window
        self._next_id = 0
        self._buffer = b""
        self._events: list[dict] = []

    def __enter__(self) -> Chromium:
        self._profile = tempfile.TemporaryDirectory(prefix="mechscope-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # Chromium reads commands on fd 3 and writes replies on fd 4. Move the pipe ends out of
        # the way first so that the dup2s cannot clobber each other.
        child_in = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
        child_out = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)

        def wire_fds():  # runs in the child, before exec
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        args = [self.binary, *FLAGS, f"--user-data-dir={self._profile.name}",
                f"--window-size={self.window[0]},{self.window[1]}", "about:blank"]
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, close_fds=False, preexec_fn=wire_fds)
        for fd in (to_browser_r, from_browser_w, child_in, child_out):
            os.close(fd)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except Exception:  # noqa: BLE001 - fall through to terminate
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.terminate()
            self._proc.wait(timeout=10)
        os.close(self._to_browser)
        os.close(self._from_browser)
        self._profile.cleanup()

    # -- protocol -------------------------------------------------------------------------------

    def _post(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        """Write one command without waiting for its reply; returns its id."""
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            data = data[os.write(self._to_browser, data):]
        return msg["id"]

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float | None = None) -> dict:
        msg_id = self._post(method, params, session)
        reply = self._read_until(lambda m: m.get("id") == msg_id, timeout or self.timeout)
        if "error" in reply:
            raise CDPError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def _read_until(self, predicate, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                msg = json.loads(raw)
                if "method" in msg:
                    self._events.append(msg)
                    self._on_event(msg)
                if predicate(msg):
                    return msg
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError("timed out waiting for chromium")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise CDPError(f"chromium exited (code {self._proc.poll()})")
                self._buffer += chunk

    def _on_event(self, msg: dict) -> None:
        if msg["method"] == "Page.javascriptDialogOpening":
            # A dialog blocks the page until answered: answer at once (the reply is ignored).
            self._post("Page.handleJavaScriptDialog", {"accept": True}, session=msg.get("sessionId"))

    def pump(self, seconds: float) -> None:
        """Read (and record) events for `seconds`."""
        try:
            self._read_until(lambda m: False, seconds)
        except CDPError as err:
            if "timed out" not in str(err):
                raise

    # -- pages ----------------------------------------------------------------------------------

    def open(self, path: Path | str, wait_load: float = 60.0) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=session)
        url = Path(path).resolve().as_uri() if not str(path).startswith(("http:", "https:", "file:", "data:")) else str(path)
        page._first_event = len(self._events)
        self.send("Page.navigate", {"url": url}, session=session)
        self._read_until(lambda m: m.get("method") == "Page.loadEventFired" and m.get("sessionId") == session,
                         wait_load)
        self.pump(0.2)
        return page


class Page:
    def __init__(self, browser: Chromium, session: str):
        self.browser = browser
        self.session = session
        self._first_event = 0

    def _events(self, *methods: str) -> list[dict]:
        return [e for e in self.browser._events[self._first_event:]
                if e.get("sessionId") == self.session and e["method"] in methods]

    def evaluate(self, expression: str):
        result = self.browser.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                        "awaitPromise": True}, session=self.session)
        if "exceptionDetails" in result:
            raise CDPError(f"evaluate({expression!r}): {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60.0, poll: float = 0.25) -> bool:
        """Poll a JavaScript expression until it is truthy; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.evaluate(f"Boolean({expression})"):
                return True
            self.browser.pump(poll)
        return False

    @property
    def errors(self) -> list[str]:
        """Uncaught exceptions, console.error calls, and error-level log entries (e.g. CSP)."""
        out = []
        for e in self._events("Runtime.exceptionThrown"):
            d = e["params"]["exceptionDetails"]
            out.append(f"exception: {d.get('exception', {}).get('description') or d.get('text')}")
        for e in self._events("Runtime.consoleAPICalled"):
            if e["params"]["type"] in ("error", "assert"):
                out.append("console.error: " + " ".join(str(a.get("value", a.get("description")))
                                                        for a in e["params"]["args"]))
        for e in self._events("Log.entryAdded"):
            if e["params"]["entry"]["level"] == "error":
                out.append(f"log: {e['params']['entry']['text']}")
        return out

    @property
    def dialogs(self) -> list[str]:
        """Messages of alert/confirm/prompt dialogs the page opened (a script that ran)."""
        return [e["params"].get("message", "") for e in self._events("Page.javascriptDialogOpening")]

    def screenshot(self, path: Path | str, width: int = 1280, max_height: int | None = None, top: int = 0) -> Path:
        """A PNG of the page: all of it, or `max_height` pixels from `top`."""
        full = int(self.evaluate("document.documentElement.scrollHeight"))
        height = min(full - top, max_height) if max_height else full - top
        self.browser.send("Emulation.setDeviceMetricsOverride",
                          {"width": width, "height": full, "deviceScaleFactor": 1, "mobile": False},
                          session=self.session)
        self.browser.pump(1.0)  # let responsive plots re-layout to the new width
        shot = self.browser.send("Page.captureScreenshot",
                                 {"format": "png", "clip": {"x": 0, "y": top, "width": width, "height": height,
                                                            "scale": 1}, "captureBeyondViewport": True},
                                 session=self.session)
        Path(path).write_bytes(base64.b64decode(shot["data"]))
        return Path(path)
