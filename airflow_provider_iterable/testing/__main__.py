"""Run the Iterable simulator from a shell until interrupted.

``python -m airflow_provider_iterable.testing --port 8765 --webhook-url http://127.0.0.1:8780/...``

It prints the Airflow connection to use on stdout (with the webhook secret the receiver needs)
and every failed webhook delivery on stderr.
"""

from __future__ import annotations

import argparse
import logging
import re
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from urllib.parse import urlsplit

from airflow_provider_iterable.testing._webhooks import redact_url
from airflow_provider_iterable.testing.simulator import DEFAULT_API_KEY, IterableSimulator


def _header(raw: str) -> tuple[str, str]:
    name, sep, value = raw.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {raw!r}")
    return name.strip(), value.strip()


def _positive(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {raw!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {raw!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_iterable.testing",
        description="Serve a local, stateful Iterable API simulator until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default)")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="the API key to accept")
    parser.add_argument("--webhook-url", help="where to POST system webhooks (emailSend, smsSend, ...)")
    parser.add_argument(
        "--webhook-header",
        action="append",
        type=_header,
        default=[],
        metavar="'NAME: VALUE'",
        help="header sent with every webhook, e.g. 'Authorization: Basic s3cret' (repeatable); the "
        "printed connection expects the Authorization header's secret, else the first header's",
    )
    parser.add_argument(
        "--rate-limit-scale",
        type=_positive,
        default=1.0,
        help="multiply every rate limit by this factor (default: %(default)s)",
    )
    parser.add_argument("--no-rate-limits", action="store_true", help="never answer 429")
    return parser


# The connection id in a receiver URL: /webhooks/<conn_id>/system or .../journeys[/<id>].
_CONN_ID_IN_URL = re.compile(r"/webhooks/([A-Za-z0-9_]+)/(?:system|journeys)(?:/|$)")


def _report_failed_deliveries() -> None:
    """Send the simulator's warnings (each failed webhook delivery) to stderr as they happen."""
    logger = logging.getLogger("airflow_provider_iterable.testing")
    if any(getattr(handler, "iterable_simulator_cli", False) for handler in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    handler.iterable_simulator_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    # Airflow may have configured the root logger to write to stdout, which holds the export lines.
    logger.propagate = False


def _connection_lines(sim: IterableSimulator, webhook_url: str | None) -> list[str]:
    """Return the ``export AIRFLOW_CONN_...`` lines: the hooks' connection, and the receiver's."""
    conn = shlex.quote(sim.connection_json(**sim.webhook_connection_extra()))
    conn_ids = ["iterable_default"]
    found = _CONN_ID_IN_URL.search(urlsplit(webhook_url).path) if webhook_url else None
    if found and found.group(1) not in conn_ids:
        # The receiver checks deliveries against the connection named in the URL.
        conn_ids.append(found.group(1))
    return [f"export AIRFLOW_CONN_{conn_id.upper()}={conn}" for conn_id in conn_ids]


def main(argv: Sequence[str] | None = None) -> int:
    """Start the simulator, print how to connect to it, and serve until SIGINT or SIGTERM."""
    args = build_parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        print(f"error: --port must be between 0 and 65535, got {args.port}", file=sys.stderr)
        return 2
    sim = IterableSimulator(
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        rate_limit_scale=args.rate_limit_scale,
        enforce_rate_limits=not args.no_rate_limits,
        webhook_url=args.webhook_url,
        webhook_headers=dict(args.webhook_header),
    )
    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    _report_failed_deliveries()
    try:
        sim.start()
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"Iterable simulator listening on {sim.url}", flush=True)
        for line in _connection_lines(sim, args.webhook_url):
            print(line, flush=True)
        if args.webhook_url:
            print(f"System webhooks go to {redact_url(args.webhook_url)}", flush=True)
            if not args.webhook_header:
                print(
                    "No --webhook-header: the connection above accepts webhooks without a secret "
                    '("webhook_auth": "none").',
                    flush=True,
                )
        print("Press Ctrl-C to stop.", flush=True)
        while not done.wait(1.0):
            pass
    finally:
        sim.stop()
    print("Iterable simulator stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
