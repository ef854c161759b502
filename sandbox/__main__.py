"""Run the sandbox: `python -m sandbox --host 127.0.0.1 --port 8001`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

from werkzeug.serving import make_server

from . import create_app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; secrets default to SANDBOX_SECRET_ID / SANDBOX_SECRET_PASSWORD."""
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001, help="0 picks a free port")
    parser.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    parser.add_argument("--secret-id")
    parser.add_argument("--secret-password")
    parser.add_argument("--latency-ms", type=int, help="added to every upstream call")
    parser.add_argument("--token-required-shape", choices=("list", "object"))
    parser.add_argument("--session-expiry-seconds", type=int)
    parser.add_argument(
        "--token-required-expiry",
        choices=("integer", "string", "absent"),
        help="how a 428 writes expiry: integer (the spec), string (Belvo's MFA guide) or absent",
    )
    parser.add_argument(
        "--open-control",
        action="store_true",
        help="let non-loopback callers use /_sandbox (e.g. from another container)",
    )
    parser.add_argument("--access-log", action="store_true", help="log every request to stderr")
    return parser.parse_args(argv)


def write_port_file(path: Path, port: int) -> None:
    """Write the port atomically, so a reader never sees a half-written file."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{port}\n")
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT."""
    args = parse_args(argv)
    app = create_app(
        {
            "secret_id": args.secret_id,
            "secret_password": args.secret_password,
            "latency_ms": args.latency_ms,
            "token_required_shape": args.token_required_shape,
            "session_expiry_seconds": args.session_expiry_seconds,
            "token_required_expiry": args.token_required_expiry,
            "control_loopback_only": False if args.open_control else None,
        }
    )
    if not args.access_log:
        # A benchmark sends thousands of calls; a line each would drown real errors.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # Threaded: each request gets its own thread, so slow or hanging calls never queue others.
    server = make_server(args.host, args.port, app, threaded=True)

    def stop(signum: int, _frame: object) -> None:
        # shutdown() waits for serve_forever to return, so it must run on another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.port_file:
        write_port_file(args.port_file, server.port)
    print(f"sandbox listening on http://{args.host}:{server.port}", flush=True)
    server.serve_forever()
    print("sandbox stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
