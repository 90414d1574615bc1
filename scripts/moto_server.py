"""moto's server mode, with DynamoDB requests handled one at a time.

Real DynamoDB evaluates a write's condition and applies the write atomically per item, so of two
concurrent conditional writes to one item exactly one succeeds. moto's server is threaded and
checks the condition and writes the item in separate steps without a lock, so under load two
racing conditional writes can both succeed. The adapters' contract tests race writers on purpose
(idempotency claims, connection creates, consent takes): against plain moto they would be flaky
for moto's sake, not ours. This launcher wraps moto's WSGI application in a lock for DynamoDB
requests only (DynamoDB has no long-polling call, so one at a time costs little); SQS long polls,
Secrets Manager, EventBridge and IAM stay concurrent.

Usage: python scripts/moto_server.py -H 127.0.0.1 -p PORT   (the same arguments as moto_server)
Environment variables such as INITIAL_NO_AUTH_ACTION_COUNT work as with moto_server.
"""

import argparse
import os
import signal
import sys
import threading

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


class SerializeDynamoDB:
    """WSGI middleware: one DynamoDB request at a time (the header names the API call)."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith("DynamoDB_"):
            return self.app(environ, start_response)
        with self.lock:
            # Materialise the body inside the lock: the write happens while the response is
            # produced.
            return list(self.app(environ, start_response))

    def __getattr__(self, name):
        return getattr(self.app, name)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True
    run_simple(
        args.host,
        args.port,
        SerializeDynamoDB(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
