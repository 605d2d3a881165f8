"""A real HTTP server on 127.0.0.1 that serves a folder in the data.binance.vision layout, for tests.

Per-path overrides make it misbehave the way the real archive does (404 gaps, 5xx, 429/418 with
`Retry-After`, slow answers, corrupted bytes), and a request log lets tests assert what the client asked.
Usage::

    with ArchiveServer(tmp_path / "archive") as server:
        server.fail_times("data/futures/um/daily/...zip", 500, 1)
        client = ArchiveClient(base_url=server.url, ...)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str  # relative to the archive root, no leading slash
    status: int


@dataclass
class _Override:
    """What to do instead of (or before) serving the file at one path."""

    #: Queue of (status, headers) answers used once each, before falling back to `status`/the file.
    queued: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    corrupt: bool = False
    delay_s: float = 0.0
    #: Number of upcoming answers that announce the full length but send half the body and hang up.
    cut_times: int = 0
    #: (arrived, release): a request sets `arrived`, then waits for `release` before it is answered.
    gate: tuple[threading.Event, threading.Event] | None = None


def _norm(path: str) -> str:
    return path.lstrip("/")


class ArchiveServer:
    """Serves `serve_dir` over HTTP at `url`; thread-safe overrides keyed by archive-relative path."""

    def __init__(self, serve_dir: Path) -> None:
        self.serve_dir = Path(serve_dir)
        self.serve_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._overrides: dict[str, _Override] = {}
        #: (status, headers) answered for every path without an override of its own (e.g. a 418 ban).
        self._every_path: tuple[int, dict[str, str]] | None = None
        self._log: list[LoggedRequest] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle --------------------------------------------------------------------------------
    def start(self) -> ArchiveServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                server._handle(self, send_body=True)

            def do_HEAD(self) -> None:  # noqa: N802
                server._handle(self, send_body=False)

            def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        # A short poll interval keeps shutdown() (called per test) fast.
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="archive-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> ArchiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("ArchiveServer is not running: call start() or use it as a context manager")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # ---- misbehaviour -----------------------------------------------------------------------------
    def _override(self, path: str) -> _Override:
        return self._overrides.setdefault(_norm(path), _Override())

    def fail_times(self, path: str, status: int, n: int, headers: Mapping[str, str] | None = None) -> None:
        """Answer the next `n` requests for `path` with `status` (and `headers`), then behave normally."""
        with self._lock:
            self._override(path).queued.extend([(status, dict(headers or {}))] * n)

    def set_status(self, path: str, status: int | None, headers: Mapping[str, str] | None = None) -> None:
        """Always answer `path` with `status` (None restores normal serving)."""
        with self._lock:
            o = self._override(path)
            o.status, o.headers = status, dict(headers or {})

    def corrupt(self, path: str) -> None:
        """Serve `path` with one byte flipped in the middle (same length), so its CHECKSUM no longer matches."""
        with self._lock:
            self._override(path).corrupt = True

    def cut_connection(self, path: str, n: int = 1) -> None:
        """For the next `n` requests of `path`, send the full Content-Length but only half the body, then
        close the connection (a transfer interrupted mid-file)."""
        with self._lock:
            self._override(path).cut_times += n

    def delay(self, path: str, seconds: float) -> None:
        """Sleep `seconds` before answering `path` (to provoke client timeouts)."""
        with self._lock:
            self._override(path).delay_s = seconds

    def set_status_everywhere(self, status: int | None, headers: Mapping[str, str] | None = None) -> None:
        """Answer every path with `status` (None restores normal serving), like an IP ban does."""
        with self._lock:
            self._every_path = None if status is None else (status, dict(headers or {}))

    def hold(self, path: str) -> tuple[threading.Event, threading.Event]:
        """Requests for `path` wait until the returned `release` is set; `arrived` is set when one comes in
        (a server that does not answer, for as long as a test needs)."""
        gate = (threading.Event(), threading.Event())
        with self._lock:
            self._override(path).gate = gate
        return gate

    def reset(self) -> None:
        """Drop every override and the request log."""
        with self._lock:
            self._overrides.clear()
            self._log.clear()

    # ---- request log ------------------------------------------------------------------------------
    @property
    def log(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log)

    def requests_for(self, path: str) -> list[LoggedRequest]:
        return [r for r in self.log if r.path == _norm(path)]

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    # ---- serving ----------------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler, send_body: bool) -> None:
        rel = _norm(unquote(urlsplit(handler.path).path))
        with self._lock:
            o = self._overrides.get(rel)
            queued = o.queued.pop(0) if o is not None and o.queued else None
            forced = (o.status, o.headers) if o is not None and o.status is not None else self._every_path
            corrupt = o.corrupt if o is not None else False
            delay_s = o.delay_s if o is not None else 0.0
            cut = o is not None and o.cut_times > 0
            if cut:
                o.cut_times -= 1  # type: ignore[union-attr]
            gate = o.gate if o is not None else None
        if gate is not None:
            gate[0].set()
            gate[1].wait(timeout=60)
        if delay_s:
            time.sleep(delay_s)

        status, headers, body = 200, {}, b""
        if queued is not None or forced is not None:
            status, headers = queued if queued is not None else forced  # type: ignore[misc]
            body = f"forced HTTP {status}\n".encode()
        else:
            file = (self.serve_dir / rel).resolve()
            inside = self.serve_dir.resolve() in file.parents
            if not inside or not file.is_file():
                status, body = 404, b"<Error><Code>NoSuchKey</Code></Error>"
            else:
                body = file.read_bytes()
                if corrupt and body:
                    mid = len(body) // 2
                    body = body[:mid] + bytes([body[mid] ^ 0xFF]) + body[mid + 1:]
                headers = {"Content-Type": "application/zip" if rel.endswith(".zip") else "text/plain"}

        with self._lock:
            self._log.append(LoggedRequest(handler.command, rel, status))
        try:
            handler.send_response(status)
            for k, v in headers.items():
                handler.send_header(k, v)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            if send_body:
                handler.wfile.write(body[: len(body) // 2] if cut else body)
            if cut:
                handler.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. after its timeout); nothing to answer
