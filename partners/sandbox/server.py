"""Serving the partner sandbox: a threaded WSGI server from the standard library, one thread
per call (a push held by a slow fault does not hold up the others)."""

import logging
import socketserver
import threading
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from partners.sandbox.core import Sandbox

logger = logging.getLogger("partners.sandbox")


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128
    block_on_close = False  # stopping must not wait for a push held by a slow fault

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host's name up in DNS, which can hang offline.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]
        self.setup_environ()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        logger.debug(format, *args)


class SandboxServer:
    """The sandbox on a port of its own; port 0 picks a free one (tests)."""

    def __init__(self, sandbox: Sandbox, *, host: str = "127.0.0.1", port: int = 0):
        self.sandbox = sandbox
        self._server = _ThreadingServer((host, port), _QuietHandler)
        self._server.set_app(self.sandbox)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """The base URL, with its trailing slash (pushes go to ``{url}pushes``)."""
        return f"http://{self._server.server_address[0]}:{self.port}/"

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def start(self) -> "SandboxServer":
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="partner-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.sandbox.close()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
