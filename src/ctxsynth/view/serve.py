"""`ctxsynth view --serve`: the page's folder over HTTP on 127.0.0.1 only (never another interface).

The page works from disk as well; serving it helps where a browser cannot open local files (a
remote machine reached through an SSH tunnel: `ssh -L 8000:127.0.0.1:8000 host`).
"""

from __future__ import annotations

import functools
import http.server
import logging
import threading
from pathlib import Path

from ctxsynth.errors import InputError

log = logging.getLogger(__name__)

HOST = "127.0.0.1"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        log.debug("view server: " + format, *args)


class PageServer:
    """Serves `root` on 127.0.0.1:`port` (0 picks a free port) in a background thread."""

    def __init__(self, root: Path, port: int = 0) -> None:
        handler = functools.partial(_Quiet, directory=str(root))
        try:
            self.httpd = http.server.ThreadingHTTPServer((HOST, port), handler)
        except OSError as exc:
            raise InputError(f"cannot serve on {HOST}:{port} ({exc.strerror}); pick another with --port, or 0 for a free one") from exc
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="ctxsynth-view", daemon=True)

    def url(self, page: str) -> str:
        return f"http://{HOST}:{self.port}/{page}"

    def __enter__(self) -> PageServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()
