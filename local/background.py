"""A local HTTP server on 127.0.0.1, served from a daemon thread: the lifecycle the Slack
stand-in and the fault proxies share (start, stop, ``with``)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional


class ServedInBackground:
    """Mixin: ``_serve()`` from ``start()``; ``stop()`` and the context manager come with it."""

    _server: Optional[ThreadingHTTPServer] = None
    _thread: Optional[threading.Thread] = None

    def start(self):  # pragma: no cover - each server says how it starts
        raise NotImplementedError

    def _serve(self, port: int, handler: type[BaseHTTPRequestHandler], thread_name: str, **server_attrs):
        """Bind 127.0.0.1:``port`` (0: a free one) and serve in a daemon thread; the handler
        reaches its owner through ``server_attrs`` set on the server."""
        server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        server.daemon_threads = True
        for name, value in server_attrs.items():
            setattr(server, name, value)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
