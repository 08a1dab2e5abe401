"""A tiny webhook receiver on loopback (``http.server``): every POST goes to the app's
``receive_webhook(headers, body)``, which decides the status (400 for a bad signature)."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            self._answer(413)
            return
        body = self.rfile.read(length)
        headers = {name.lower(): value for name, value in self.headers.items()}
        self._answer(self.server.app.receive_webhook(headers, body))

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()

    def log_message(self, format, *args):
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class WebhookReceiver:
    """``with WebhookReceiver(app) as receiver: ...`` serves ``receiver.url`` until the block ends."""

    def __init__(self, app, *, host: str = "127.0.0.1", port: int = 0, path: str = "/webhooks"):
        self.app = app
        self.host, self.port, self.path = host, port, path
        self._server = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    def start(self) -> "WebhookReceiver":
        self._server = _Server((self.host, self.port), _Handler)
        self._server.app = self.app
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
