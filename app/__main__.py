"""One command line: ``python -m app <command>`` (console script: ``vas``).

serve | worker | migrate | analyze | models | keys
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from app.data_dir import ensure_data_dir
from app.errors import DataDirUnusable
from app.logs import configure_logging
from app.settings import Settings

log = logging.getLogger("app")


def _migrate(settings: Settings) -> None:
    from app.store.migrate import upgrade

    upgrade(settings.resolved_database_url)


def _prepare(settings: Settings) -> None:
    """What serve and worker do first: a usable data dir, then the schema if auto_migrate."""
    ensure_data_dir(settings.data_dir)
    if settings.auto_migrate:
        _migrate(settings)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.api.app import create_app
    from app.api.drain import DrainingServer

    overrides = {"host": args.host, "port": args.port}
    if args.no_embedded_worker:
        overrides["embedded_worker"] = False
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    configure_logging(settings.log_level, settings.log_json)
    _prepare(settings)
    mode = "with an embedded worker" if settings.embedded_worker else "API only (run `python -m app worker`)"
    log.info(
        "serving on http://%s:%d %s; database %s",
        settings.host,
        settings.port,
        mode,
        settings.resolved_database_url.split("@")[-1],
    )
    from app.api.auth import startup_notice

    log.log(*startup_notice(settings))
    api = create_app(settings)
    config = uvicorn.Config(
        api,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None if settings.log_json else uvicorn.config.LOGGING_CONFIG,
        timeout_graceful_shutdown=30,
    )
    DrainingServer(config, api.state, settings.drain_seconds).run()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    _prepare(settings)  # before torch is imported: a bad data dir fails in a second

    from app.analysis.engine import Analyzer
    from app.blobs import LocalBlobStore
    from app.metrics import Metrics, serve_worker_metrics
    from app.store.factory import open_store
    from app.worker.multi import worker_class

    store = open_store(settings)
    metrics = Metrics()
    metrics.for_worker()
    if settings.metrics_port:
        serve_worker_metrics(metrics, settings.host, settings.metrics_port)
    worker = worker_class(settings)(
        store=store,
        blobs=LocalBlobStore(settings.videos_dir),
        settings=settings,
        analyzer_factory=lambda: Analyzer.from_settings(settings),
        metrics=metrics,
    )

    def _graceful(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: finishing or releasing the current job, then exiting", signum)
        worker.stop()

    signal.signal(signal.SIGTERM, _graceful)
    signal.signal(signal.SIGINT, _graceful)
    try:
        worker.run()
    finally:
        store.close()
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    ensure_data_dir(settings.data_dir)
    _migrate(settings)
    log.info("migrations applied to %s", settings.resolved_database_url.split("@")[-1])
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vas", description="Video analysis service")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP API (with an embedded worker by default)")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--no-embedded-worker", action="store_true", help="API only; run workers separately")
    serve.set_defaults(handler=cmd_serve)
    sub.add_parser("worker", help="run a worker process").set_defaults(handler=cmd_worker)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(handler=cmd_migrate)

    from app.cli import analyze_cmd, client_cmd, keys_cmd, models_cmd

    analyze_cmd.register(sub)
    models_cmd.register(sub)
    keys_cmd.register(sub)
    client_cmd.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except DataDirUnusable as exc:  # a configuration fault: one line, no traceback
        print(f"vas {args.command}: cannot start: {exc.detail}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
