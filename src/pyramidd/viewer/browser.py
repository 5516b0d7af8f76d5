"""Headless Chromium driven over the DevTools protocol, to check viewer pages.

Chromium is started with ``--remote-debugging-pipe``: commands go to its file
descriptor 3 and answers come from descriptor 4, as NUL-terminated JSON. That needs
nothing but the standard library and the system's ``chromium`` (Debian's package);
no driver downloads a browser of its own.

    with Browser.launch() as browser:
        page = browser.new_page(800, 600)
        page.goto("http://127.0.0.1:8000/photo.html")
        page.wait_for("window.pyramidd && window.pyramidd.fullyLoaded()")
        png = page.screenshot()
        bad = [r for r in page.responses if r.status >= 400]
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PyramiddError

#: Flags for a quiet, self-contained headless browser on a machine without a network.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-pipe",
)


class BrowserError(PyramiddError):
    """Chromium is missing, did not start, or did not answer in time."""

    kind = "browser"


def find_chromium() -> str | None:
    """Path of a Chromium binary: ``PYRAMIDD_CHROMIUM``, else ``chromium`` on PATH."""
    explicit = os.environ.get("PYRAMIDD_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class Response:
    """One HTTP response the page received (or a request that failed: status 0)."""

    url: str
    status: int
    error: str = ""


@dataclass
class Browser:
    """A running headless Chromium and its DevTools pipe."""

    process: subprocess.Popen[bytes]
    profile: str
    _write: Any
    _read: Any
    _next_id: int = 0
    _answers: dict[int, dict[str, Any]] = field(default_factory=dict)
    _events: list[dict[str, Any]] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _reader: threading.Thread | None = None

    @classmethod
    def launch(cls, binary: str | None = None, timeout: float = 60.0) -> "Browser":
        """Start Chromium with a fresh profile; :class:`BrowserError` if it cannot.

        ``timeout`` bounds its first answer: a cold start on a busy machine (two cores
        and a test suite's processes) has taken more than 20 s."""
        binary = binary or find_chromium()
        if not binary:
            raise BrowserError("chromium is not installed: apt-get install chromium (scripts/setup)")
        profile = tempfile.mkdtemp(prefix="pyramidd-chromium-")
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()

        def wire_fds() -> None:  # in the child, before exec
            os.dup2(to_child_r, 3)
            os.dup2(from_child_w, 4)

        try:
            process = subprocess.Popen(
                [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=wire_fds,
                pass_fds=(3, 4),
                start_new_session=True,
            )
        except OSError as exc:
            shutil.rmtree(profile, ignore_errors=True)
            raise BrowserError(f"cannot start {binary}: {exc}") from exc
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        browser = cls(process, profile, os.fdopen(to_child_w, "wb", buffering=0),
                      os.fdopen(from_child_r, "rb", buffering=0))
        browser._reader = threading.Thread(target=browser._pump, daemon=True)
        browser._reader.start()
        try:
            browser.call("Browser.getVersion", timeout=timeout)
        except BaseException:
            browser.close()
            raise
        return browser

    # ----------------------------------------------------------------- protocol

    def _pump(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = self._read.read(65536)
            except (OSError, ValueError):
                chunk = b""
            if not chunk:
                with self._cond:
                    self._events.append({"method": "pyramidd.closed"})
                    self._cond.notify_all()
                return
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            with self._cond:
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:
                        self._answers[message["id"]] = message
                    else:
                        self._events.append(message)
                self._cond.notify_all()

    def send(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> int:
        """Send a command; return its id (see :meth:`answer`)."""
        with self._cond:
            self._next_id += 1
            ident = self._next_id
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._write.write(json.dumps(message).encode() + b"\0")
        return ident

    def answer(self, ident: int, timeout: float = 20.0) -> dict[str, Any]:
        """The result of command ``ident``; :class:`BrowserError` on error or timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while ident not in self._answers:
                left = deadline - time.monotonic()
                code = self.process.poll()
                if code is not None:
                    raise BrowserError(f"chromium exited (code {code}) before answering command {ident}")
                if left <= 0:
                    raise BrowserError(f"chromium did not answer command {ident} in {timeout:.0f} s")
                self._cond.wait(min(left, 0.5))
            message = self._answers.pop(ident)
        if "error" in message:
            raise BrowserError(f"chromium refused a command: {message['error']}")
        return message.get("result", {})

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None, timeout: float = 20.0) -> dict[str, Any]:
        """Send a command and wait for its result."""
        return self.answer(self.send(method, params, session), timeout)

    def events(self, session: str | None = None) -> list[dict[str, Any]]:
        """Events received so far (of one session, when given)."""
        with self._cond:
            return [e for e in self._events if session is None or e.get("sessionId") == session]

    def wait_event(self, method: str, session: str | None, timeout: float = 20.0) -> dict[str, Any]:
        """Wait for the first not yet seen event called ``method``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i, event in enumerate(self._events):
                    if event.get("method") == method and event.get("sessionId") == session:
                        return self._events.pop(i)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BrowserError(f"no {method} event in {timeout:.0f} s")
                self._cond.wait(min(left, 0.5))

    # ----------------------------------------------------------------- pages

    def new_page(self, width: int = 800, height: int = 600) -> "Page":
        """A new tab of ``width`` x ``height`` CSS pixels (device scale 1), recording its
        network responses."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        page.call("Page.enable")
        page.call("Network.enable")
        page.call("Runtime.enable")
        page.call("Network.setCacheDisabled", {"cacheDisabled": True})
        page.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        return page

    def close(self) -> None:
        """Stop Chromium (and every process it started) and delete its profile."""
        try:
            if self.process.poll() is None:
                try:
                    self.send("Browser.close")
                    self.process.wait(timeout=5)
                except (OSError, ValueError, subprocess.TimeoutExpired):
                    pass
            if self.process.poll() is None:
                os.killpg(self.process.pid, 9)
                self.process.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        finally:
            for f in (self._write, self._read):
                try:
                    f.close()
                except OSError:
                    pass
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Page:
    """One tab."""

    browser: Browser
    session: str

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 20.0) -> dict[str, Any]:
        """A command in this tab's session."""
        return self.browser.call(method, params, self.session, timeout)

    def goto(self, url: str, timeout: float = 20.0) -> None:
        """Open ``url`` and wait for its load event."""
        result = self.call("Page.navigate", {"url": url}, timeout)
        if result.get("errorText"):
            raise BrowserError(f"cannot open {url}: {result['errorText']}")
        self.browser.wait_event("Page.loadEventFired", self.session, timeout)

    def evaluate(self, expression: str, timeout: float = 20.0) -> Any:
        """The value of a JavaScript expression (promises awaited)."""
        result = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                "returnByValue": True}, timeout)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"page script failed: {text}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 20.0, settle: float = 0.0) -> None:
        """Wait until ``expression`` is true (then ``settle`` seconds more)."""
        deadline = time.monotonic() + timeout
        while not self.evaluate(f"!!({expression})"):
            if time.monotonic() > deadline:
                raise BrowserError(f"still false after {timeout:.0f} s: {expression}")
            time.sleep(0.1)
        if settle:
            time.sleep(settle)

    def screenshot(self) -> bytes:
        """PNG of the viewport."""
        return base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"})["data"])

    @property
    def responses(self) -> list[Response]:
        """Every response received so far, and failed requests with status 0."""
        urls: dict[str, str] = {}
        out = []
        for event in self.browser.events(self.session):
            params = event.get("params", {})
            if event.get("method") == "Network.requestWillBeSent":
                urls[params["requestId"]] = params["request"]["url"]
            elif event.get("method") == "Network.responseReceived":
                out.append(Response(params["response"]["url"], int(params["response"]["status"])))
            elif event.get("method") == "Network.loadingFailed":
                url = urls.get(params["requestId"], "?")
                out.append(Response(url, 0, params.get("errorText", "")))
        return out

    def console_errors(self) -> list[str]:
        """Uncaught exceptions reported by the page."""
        return [
            e["params"]["exceptionDetails"].get("text", "")
            + " " + str(e["params"]["exceptionDetails"].get("exception", {}).get("description", ""))
            for e in self.browser.events(self.session)
            if e.get("method") == "Runtime.exceptionThrown"
        ]

    def screenshot_to(self, path: Path) -> Path:
        """Write :meth:`screenshot` to ``path``."""
        Path(path).write_bytes(self.screenshot())
        return Path(path)
