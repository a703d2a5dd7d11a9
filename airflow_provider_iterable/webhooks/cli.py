"""The ``iterable-webhooks`` console script: serve the receiver, and look into the event queue.

``iterable-webhooks serve`` runs the receiver standalone (uvicorn); ``tail``, ``stats``,
``purge`` and ``infer-schema`` read or maintain the queue named by ``[iterable] queue_url``
(or ``--queue-url``); ``--json`` prints machine-readable output.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_iterable._values import KINDS, whole_number
from airflow_provider_iterable.exceptions import IterableConfigError

if TYPE_CHECKING:
    from airflow_provider_iterable.event_queue import EventQueue

APP_FACTORY = "airflow_provider_iterable.webhooks.app:create_standalone_app"


def _bind(host: str, port: int) -> socket.socket:
    # Bound here rather than by uvicorn so that port 0 works and the real port can be printed.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_server(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8780,
    workers: int = 1,
    log_level: str = "info",
    access_log: bool = False,
) -> None:
    """Serve ``app`` with uvicorn until interrupted, printing the address actually bound.

    :param app: An ASGI app, or an import string of an app factory (needed for ``workers > 1``).
    :param host: Address to listen on.
    :param port: Port to listen on; 0 picks a free one.
    :param workers: Worker processes sharing the socket.
    :param log_level: uvicorn's log level.
    :param access_log: Log every request (off by default: query strings hold e-mail addresses
        in Iterable's merge tags).
    """
    import uvicorn

    whole_number(workers, "workers", minimum=1)
    if workers > 1 and not isinstance(app, str):
        raise IterableConfigError("workers > 1 needs the app as an import string")
    sock = _bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app,
        factory=isinstance(app, str),
        host=bound_host,
        port=bound_port,
        workers=workers,
        log_level=log_level,
        access_log=access_log,
        timeout_graceful_shutdown=10,
    )
    display = f"[{bound_host}]" if ":" in bound_host else bound_host
    print(
        f"Iterable webhook receiver listening on http://{display}:{bound_port}", file=sys.stderr, flush=True
    )
    if workers > 1:
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[sock]).run()
    else:
        uvicorn.Server(config).run(sockets=[sock])


def serve(args: argparse.Namespace) -> int:
    """Run the receiver standalone until interrupted.

    :param args: Parsed ``serve`` arguments.
    """
    if args.queue_url:
        # The app reads [iterable]; environment variables reach every worker process too.
        os.environ["AIRFLOW__ITERABLE__QUEUE_URL"] = args.queue_url
    if args.max_body_bytes is not None:
        os.environ["AIRFLOW__ITERABLE__WEBHOOK_MAX_BODY_BYTES"] = str(args.max_body_bytes)
    if args.workers < 1:
        raise SystemExit("iterable-webhooks serve: --workers must be at least 1")
    run_server(
        APP_FACTORY,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=args.access_log,
    )
    return 0


def _queue(args: argparse.Namespace) -> EventQueue:
    # Imported here: ``serve`` never needs the synchronous queue in this process.
    from airflow_provider_iterable.event_queue import EventQueue

    return EventQueue(args.queue_url or None)


def _print(value: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(value, indent=2, default=str))
    elif isinstance(value, dict):
        for key, item in value.items():
            print(f"{key}: {item}")
    else:
        print(value)


def purge(args: argparse.Namespace) -> int:
    """Remove events past retention (and past every live consumer cursor).

    :param args: Parsed ``purge`` arguments.
    """
    with _queue(args) as queue:
        removed = queue.purge(retention_days=args.retention_days)
    _print({"purged": removed}, args.json)
    return 0


def tail(args: argparse.Namespace) -> int:
    """Print the newest events, oldest first (one JSON object per line with ``--json``).

    :param args: Parsed ``tail`` arguments.
    """
    from airflow_provider_iterable.event_queue import admin

    with _queue(args) as queue:
        found = admin.tail(
            queue,
            limit=args.limit,
            conn_id=args.conn_id,
            kind=args.kind,
            event_name=args.event_name,
            workflow_id=args.workflow_id,
        )
    for event in found:
        if args.json:
            print(json.dumps(event.to_dict(), default=str))
        else:
            workflow = "-" if event.workflow_id is None else event.workflow_id
            print(
                f"{event.id}\t{event.received_at.isoformat()}\t{event.conn_id}\t{event.kind}\t"
                f"{event.event_name or '-'}\tworkflow={workflow}"
            )
    return 0


def stats(args: argparse.Namespace) -> int:
    """Print row counts, age range, consumers and size of the queue.

    :param args: Parsed ``stats`` arguments.
    """
    from airflow_provider_iterable.event_queue import admin

    with _queue(args) as queue:
        summary = admin.stats(queue)
    _print(summary, args.json)
    return 0


def infer_schema(args: argparse.Namespace) -> int:
    """Print a JSON Schema inferred from stored payloads.

    :param args: Parsed ``infer-schema`` arguments.
    """
    from airflow_provider_iterable.event_queue import admin

    with _queue(args) as queue:
        try:
            schema = admin.infer_schema(
                queue,
                event_name=args.event_name,
                workflow_id=args.workflow_id,
                conn_id=args.conn_id,
                limit=args.limit,
            )
        except ValueError as exc:
            print(f"iterable-webhooks infer-schema: {exc}", file=sys.stderr)
            return 1
    # A schema is JSON whatever --json says.
    print(json.dumps(schema, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``iterable-webhooks``."""
    parser = argparse.ArgumentParser(
        prog="iterable-webhooks", description="Iterable webhook receiver and event queue tools."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p_serve = sub.add_parser("serve", help="run the webhook receiver (uvicorn)")
    p_serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p_serve.add_argument("--port", type=int, default=8780, help="port to listen on; 0 picks a free one")
    p_serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p_serve.add_argument("--queue-url", default=None, help="event queue URL (default [iterable] queue_url)")
    p_serve.add_argument("--max-body-bytes", type=int, default=None, help="largest body accepted")
    p_serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug", "trace"]
    )
    p_serve.add_argument("--access-log", action="store_true", help="log every request (holds query strings)")
    p_serve.set_defaults(func=serve)

    def queue_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--queue-url", default=None, help="event queue URL (default [iterable] queue_url)")
        p.add_argument("--json", action="store_true", help="print JSON")

    def filters(p: argparse.ArgumentParser, *, kind: bool = True) -> None:
        p.add_argument("--conn-id", default=None, help="only events of this connection")
        if kind:
            p.add_argument("--kind", choices=KINDS, default=None, help="only this kind")
        p.add_argument("--event-name", default=None, help="only events with this eventName")
        p.add_argument("--workflow-id", type=int, default=None, help="only events of this journey")

    p_tail = sub.add_parser("tail", help="show the newest events")
    queue_options(p_tail)
    filters(p_tail)
    p_tail.add_argument("--limit", type=int, default=20, help="how many events (default 20)")
    p_tail.set_defaults(func=tail)

    p_stats = sub.add_parser("stats", help="summarise the queue")
    queue_options(p_stats)
    p_stats.set_defaults(func=stats)

    p_schema = sub.add_parser("infer-schema", help="infer a JSON Schema from stored payloads")
    queue_options(p_schema)
    filters(p_schema, kind=False)
    p_schema.add_argument("--limit", type=int, default=500, help="sample size (default 500)")
    p_schema.set_defaults(func=infer_schema)

    p_purge = sub.add_parser("purge", help="delete events past retention")
    queue_options(p_purge)
    p_purge.add_argument("--retention-days", type=float, default=None, help="default [iterable] value")
    p_purge.set_defaults(func=purge)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``iterable-webhooks``.

    :param argv: Arguments (default ``sys.argv[1:]``).
    """
    args = build_parser().parse_args(argv)
    _log_to_stderr()
    return int(args.func(args) or 0)


def _log_to_stderr() -> None:
    """Send every log line to stderr, so that stdout carries only the command's output.

    Importing Airflow (the queue's configuration, the connection lookup) sets up its logging to
    write to stdout; ``tail --json > events.jsonl`` must stay valid JSON Lines. Airflow's levels
    and formats are kept: only the stream changes.
    """
    import logging

    # Imported first, by every command (most read [iterable] from Airflow's configuration
    # anyway): it sets up Airflow's logging, whose stream is then moved.
    import airflow  # noqa: F401

    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)
    try:
        import structlog
    except ImportError:  # pragma: no cover - Airflow brings structlog
        return
    factory: Any = structlog.get_config().get("logger_factory")
    if getattr(factory, "io", None) is sys.stdout:
        factory.io = sys.stderr


if __name__ == "__main__":
    sys.exit(main())
