"""``python -m app serve|check|migrate|export|import``: run the service, check every
backend once, apply the schema migrations, or move conversations to and from files."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import sys
from collections.abc import Coroutine
from typing import Any

import structlog
from dependency_injector import providers

from app.container_spec import load_container
from app.database.cli import add_migrate_parser, migrate
from app.errors import DataLayerError, ResourceStopError
from app.transfer_cli import add_transfer_commands, run_export, run_import
from containers import build_lifecycle, check_readiness, readiness_table
from containers.vectors import describe_store

__all__ = ["main"]

EXIT_NOT_READY = 1
EXIT_BAD_START = 2
EXIT_BAD_STOP = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
MAX_PORT = 65535

log = structlog.get_logger(__name__)


def cancel_on_sigterm() -> None:
    """SIGTERM cancels the running command, so that whatever started is stopped again."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


async def check(container_spec: str | None) -> int:
    """Start the lifecycle, print the readiness table, exit non-zero if anything is not ready.

    A probe beside a running ``serve``: the vector index is only loaded and verified, read-only
    (no writer lock, no autosave, no save at stop), so the index directory is left unchanged;
    no schema migration runs and the conversations table is not created; the pgvector store
    only checks the extension and the registry, and creates nothing. The vectors row's
    address names the store, where it is and pgvector's version.
    """
    cancel_on_sigterm()
    container = load_container(container_spec)
    # A probe changes nothing: no migrations (`python -m app migrate status` lists them).
    container.database_layer.apply_migrations.override(providers.Object(False))
    container.vector_layer.read_only.override(providers.Object(True))
    container.data_layer.create_tables.override(providers.Object(False))
    # Reports the relays' and projections' lag; publishing stays with the serving process.
    container.entity_layer.run_consumers.override(providers.Object(False))
    async with build_lifecycle(container) as lifecycle:
        results = await check_readiness(lifecycle)
        if "vectors" in results:  # which store, where, and pgvector's version
            store = describe_store(lifecycle.value("vectors"))
            results["vectors"] = dataclasses.replace(results["vectors"], address=store)
    print(readiness_table(results))
    return 0 if all(result.ok for result in results.values()) else EXIT_NOT_READY


async def serve(host: str | None, port: int | None, container_spec: str | None) -> int:
    """Start the backends, then serve the API until interrupted; stop everything after."""
    from app.web import create_app
    from app.web.server import build_server

    cancel_on_sigterm()
    container = load_container(container_spec)
    settings = container.settings()
    app = create_app(container, freeze_gc=True)
    lifecycle = app.state.lifecycle
    host = settings.api.host if host is None else host
    port = settings.api.port if port is None else port
    await lifecycle.start()
    try:
        server = build_server(app, host=host, port=port)
        try:
            await server.serve()
        except SystemExit:  # uvicorn's way out when it cannot bind (logged above)
            print(f"error: could not serve on {host}:{port}", file=sys.stderr)
            return EXIT_BAD_START
        if not server.started:
            return EXIT_BAD_START
    finally:
        await lifecycle.stop()
    stop_error: ResourceStopError | None = app.state.stop_error
    if stop_error is not None:
        raise stop_error
    return 0


def port_number(text: str) -> int:
    """``--port``: an int from 1 to 65535."""
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= MAX_PORT:
        msg = f"must be an int from 1 to {MAX_PORT}, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return port


def run(command: Coroutine[Any, Any, int]) -> int:
    """Run ``command`` on uvloop when it is installed (uvicorn's own default), else asyncio."""
    try:
        import uvloop
    except ImportError:  # not on Windows
        return asyncio.run(command)
    return uvloop.run(command)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="serve the HTTP API")
    serve_parser.add_argument("--host", help="bind address (default API__HOST, 127.0.0.1)")
    serve_parser.add_argument("--port", type=port_number, help="port (default API__PORT, 8000)")
    check_parser = commands.add_parser(
        "check", help="start every backend (the vector index read-only), print readiness, stop"
    )
    for command in (serve_parser, check_parser):
        command.add_argument(
            "--container",
            metavar="MODULE:FACTORY",
            help="your container: a Container subclass, or a function of no arguments "
            "returning one (default: containers.Container)",
        )
    add_migrate_parser(commands)
    add_transfer_commands(commands)
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            return run(check(args.container))
        if args.command == "migrate":
            return run(migrate(args.action, dry_run=args.dry_run, dirs=args.dirs))
        if args.command == "export":
            return run(run_export(args))
        if args.command == "import":
            return run(run_import(args))
        return run(serve(args.host, args.port, args.container))
    except DataLayerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if isinstance(exc, ExceptionGroup):
            for inner in exc.exceptions:
                print(f"  - {type(inner).__name__}: {inner}", file=sys.stderr)
        return EXIT_BAD_STOP if isinstance(exc, ResourceStopError) else EXIT_BAD_START
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except asyncio.CancelledError:
        return EXIT_TERMINATED


if __name__ == "__main__":
    sys.exit(main())
