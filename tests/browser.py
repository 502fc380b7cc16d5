"""Headless Chromium for tests: a reusable driver over the DevTools protocol on a pipe.

Standard library only. Debian's Chromium is started with ``--remote-debugging-pipe``: it
reads JSON commands on file descriptor 3 and writes answers and events on file
descriptor 4, each message ended by a NUL byte. The browser runs offline: every request
to a host other than the loopback addresses is sent to a closed local port and fails, and
every request a page makes is recorded, so a test can also assert that none was tried.

    from browser import Browser, leaves_localhost   # tests/ is on sys.path under pytest

    with Browser() as browser:                 # ensure_chromium() + a fresh profile
        page = browser.new_page()
        page.goto("http://127.0.0.1:8000/index.html")
        title = page.eval("document.title")
        page.screenshot(Path("build/shot.png"), full_page=True)
        assert not [u for u in page.requests() if leaves_localhost(u)]

``Browser`` starts the process (as root it needs ``--no-sandbox``, which is among
``Browser.FLAGS``), ``send`` issues one command and waits for its answer, ``events``
holds every event in arrival order and ``close`` ends the process. ``Page`` is one tab with
its own DevTools session: ``goto``, ``eval``, ``wait_for``, ``requests``, ``failed``,
``console_errors``, ``screenshot`` and ``close``.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

CHROMIUM = "/usr/bin/chromium"


class BrowserUnavailable(RuntimeError):
    """Chromium is missing and cannot be installed here."""


def ensure_chromium(executable: str = CHROMIUM) -> str:
    """The path of Debian's Chromium, installed with apt-get (as root) if it is missing."""
    if Path(executable).is_file():
        return executable
    if os.geteuid() != 0:
        raise BrowserUnavailable(
            f"{executable} is missing and this user cannot install it: "
            "run `sudo apt-get update && sudo apt-get install -y chromium`"
        )
    wait = ["-o", "DPkg::Lock::Timeout=600"]  # another install (a parallel test) finishes first
    for cmd in (["apt-get", *wait, "update"], ["apt-get", *wait, "install", "-y", "chromium"]):
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        if done.returncode != 0:
            raise BrowserUnavailable(
                f"`{' '.join(cmd)}` failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
    if not Path(executable).is_file():
        raise BrowserUnavailable(f"apt-get installed chromium but {executable} is missing")
    return executable


def leaves_localhost(url: str) -> bool:
    """True for a URL that would reach another host than 127.0.0.1 (data: and blob: stay)."""
    parts = urlsplit(url)
    if parts.scheme in {"data", "blob", "about"}:
        return False
    return parts.scheme not in {"http", "https"} or parts.hostname != "127.0.0.1"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002  (signature of the base class)
        pass


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 (a free port) while the block runs; yields its URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _high_fd(fd: int) -> int:
    """A copy of ``fd`` numbered 10 or higher (the original is closed)."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe.

    Args:
        executable: the browser; default: :func:`ensure_chromium` (installs it if needed).
        profile: the user-data folder; default: a temporary folder removed by ``close``.
        log: where the browser's stdout and stderr go; default: ``chromium.log`` in the
            profile's parent folder (a temporary folder when ``profile`` is not given).
        window: the viewport size in CSS pixels, ``(width, height)``.

    ``send`` issues a command and waits for its answer; ``events`` collects every event
    (``(method, params, sessionId)``) in arrival order. Usable as a context manager.
    """

    FLAGS = [
        "--headless",
        "--no-sandbox",  # required as root
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-features=Translate,OptimizationHints,MediaRouter",
        "--hide-scrollbars",
        # offline: every non-loopback request goes to a proxy on a closed port and fails
        # (Chromium never proxies loopback addresses), so nothing can leave the machine
        "--proxy-server=http://127.0.0.1:9",
        "--remote-debugging-pipe",
    ]

    def __init__(
        self,
        executable: str | None = None,
        profile: Path | None = None,
        log: Path | None = None,
        window: tuple[int, int] = (1280, 900),
    ):
        executable = executable or ensure_chromium()
        self._tmp = None
        if profile is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="chromium-"))
            profile = self._tmp / "profile"
        if log is None:
            log = Path(profile).parent / "chromium.log"
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        self.window = window
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # move the browser's ends above 9 so that the redirections below cannot clash
        to_browser_r, from_browser_w = (_high_fd(fd) for fd in (to_browser_r, from_browser_w))
        args = [
            executable,
            *self.FLAGS,
            f"--window-size={window[0]},{window[1]}",
            f"--user-data-dir={profile}",
            "about:blank",
        ]
        # the browser reads commands on fd 3 and writes answers on fd 4
        r, w = to_browser_r, from_browser_w
        script = f'exec "$0" "$@" 3<&{r} 4>&{w} {r}<&- {w}>&-'
        self._log = open(log, "wb")  # noqa: SIM115  (closed in close())
        self.proc = subprocess.Popen(
            ["bash", "-c", script, *args],
            pass_fds=(to_browser_r, from_browser_w),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.events: list[tuple[str, dict, str | None]] = []
        self._answers: dict[int, dict] = {}
        self._cond = threading.Condition()
        self._next_id = 0
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read(self) -> None:
        buffer = b""
        while True:
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                break
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            with self._cond:
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:
                        self._answers[message["id"]] = message
                    else:
                        self.events.append(
                            (message["method"], message.get("params", {}), message.get("sessionId"))
                        )
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def send(
        self,
        method: str,
        params: dict | None = None,
        session: str | None = None,
        timeout: float = 60.0,
    ) -> dict:
        """Issue one DevTools command and return its result (RuntimeError on an error)."""
        with self._cond:
            self._next_id += 1
            ident = self._next_id
        message = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cond:
            while ident not in self._answers:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise TimeoutError(f"no answer to {method} within {timeout} s")
                self._cond.wait(left)
            answer = self._answers.pop(ident)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def wait_event(self, method: str, session: str, since: int, timeout: float = 60.0) -> dict:
        """Wait for event ``method`` of ``session`` among the events after index ``since``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for name, params, sid in self.events[since:]:
                    if name == method and sid == session:
                        return params
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {method} within {timeout} s")
                self._cond.wait(left)

    def new_page(self) -> Page:
        """A new tab with its own DevTools session."""
        return Page(self)

    def close(self) -> None:
        """End the browser process and release its pipes (and its temporary profile)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.send("Browser.close", timeout=10)
        except (TimeoutError, RuntimeError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)
        self._reader.join(timeout=5)
        os.close(self._from_browser)
        self._log.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)


class Page:
    """One tab of the browser, with its own DevTools session."""

    def __init__(self, browser: Browser):
        self.browser = browser
        self.target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = browser.send(
            "Target.attachToTarget", {"targetId": self.target, "flatten": True}
        )["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.send(f"{domain}.enable")

    def send(self, method: str, params: dict | None = None, timeout: float = 60.0) -> dict:
        """Issue a DevTools command in this tab's session."""
        return self.browser.send(method, params, self.session, timeout=timeout)

    def goto(self, url: str, timeout: float = 60.0) -> None:
        """Navigate and wait for the load event."""
        since = len(self.browser.events)
        answer = self.send("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise RuntimeError(f"{url}: {answer['errorText']}")
        self.browser.wait_event("Page.loadEventFired", self.session, since, timeout)

    def eval(self, expression: str):
        """Evaluate JavaScript (promises awaited) and return its value as JSON data."""
        answer = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in answer:
            raise RuntimeError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0):
        """Poll a JavaScript expression until it is truthy; return its last value."""
        deadline = time.monotonic() + timeout
        value = self.eval(expression)
        while not value and time.monotonic() < deadline:
            time.sleep(0.2)
            value = self.eval(expression)
        return value

    def _events(self, method: str) -> list[dict]:
        return [
            params
            for name, params, sid in list(self.browser.events)
            if name == method and sid == self.session
        ]

    def requests(self) -> list[str]:
        """URLs of every request this tab has made so far (also those that failed)."""
        return [params["request"]["url"] for params in self._events("Network.requestWillBeSent")]

    def failed(self) -> list[str]:
        """URLs of the requests of this tab that failed (network error, blocked)."""
        urls = {
            p["requestId"]: p["request"]["url"] for p in self._events("Network.requestWillBeSent")
        }
        return [
            urls.get(p["requestId"], p["requestId"]) + f" ({p.get('errorText', '')})"
            for p in self._events("Network.loadingFailed")
        ]

    def console_errors(self) -> list[str]:
        """Error messages the tab logged so far (console and browser log)."""
        found = [
            e["entry"].get("text", "")
            for e in self._events("Log.entryAdded")
            if e["entry"].get("level") == "error"
        ]
        found += [
            " ".join(str(a.get("value", a.get("description", ""))) for a in e.get("args", []))
            for e in self._events("Runtime.consoleAPICalled")
            if e.get("type") == "error"
        ]
        return found

    def screenshot(self, path: Path, full_page: bool = False, max_height: int = 16000) -> Path:
        """Write a PNG of the viewport, or of the whole page (at most ``max_height`` px)."""
        params: dict = {"format": "png"}
        if full_page:
            width, height = self.eval(
                "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
            )
            params["captureBeyondViewport"] = True
            params["clip"] = {
                "x": 0,
                "y": 0,
                "width": width,
                "height": min(height, max_height),
                "scale": 1,
            }
        shot = self.send("Page.captureScreenshot", params, timeout=120)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        """Close this tab."""
        try:
            self.browser.send("Target.closeTarget", {"targetId": self.target}, timeout=10)
        except (TimeoutError, RuntimeError, OSError):
            pass
