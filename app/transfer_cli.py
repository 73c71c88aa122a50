"""``python -m app export|import``: conversations to and from files, on the configured Postgres.

Only logging, Postgres, the database client and the conversation history are started (no
vector index, bus or state backend), so an export can run beside a serving process.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import cast

from app.data import ConversationHistoryUnit, ExportFormat, ExportManager, ImportManager
from containers import Lifecycle, create_container, plan
from containers.accessors import resolve
from settings import load_settings

__all__ = ["add_transfer_commands", "run_export", "run_import"]

UNITS = frozenset(("logging", "postgres", "database", "conversations"))


def _format(args: argparse.Namespace, path: Path) -> ExportFormat:
    if args.format:
        return ExportFormat(args.format)
    suffix = path.suffix.lstrip(".").lower()
    try:
        return ExportFormat(suffix)
    except ValueError:
        raise SystemExit(
            f"error: cannot tell the format of {path} from its suffix; pass --format"
        ) from None


def add_transfer_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``export`` and ``import`` subcommands."""
    formats = [fmt.value for fmt in ExportFormat]
    export = commands.add_parser("export", help="write conversations to a file")
    export.add_argument("output", type=Path, help="file to write (replaced when complete)")
    export.add_argument("--format", choices=formats, help="default: from the file's suffix")
    export.add_argument(
        "--conversation",
        action="append",
        dest="conversations",
        metavar="ID",
        help="a conversation to export (repeatable; default: all)",
    )
    export.add_argument("--fields", help="comma-separated fields to write (default: all)")
    export.add_argument("--no-metadata", action="store_true", help="leave metadata out")
    imp = commands.add_parser("import", help="read conversations from a file (all or nothing)")
    imp.add_argument("input", type=Path, help="file to read")
    imp.add_argument("--format", choices=formats, help="default: from the file's suffix")
    imp.add_argument(
        "--merge",
        choices=["append", "replace", "skip_duplicates"],
        default="append",
        help="what to do with message ids already stored (default: append, which refuses them)",
    )
    imp.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="FILE_FIELD=FIELD",
        help="rename a file field to a message field (repeatable)",
    )


async def _history() -> tuple[Lifecycle, ConversationHistoryUnit]:
    settings = load_settings()
    container = create_container(settings)
    units = [unit for unit in plan(container).units if unit.name in UNITS]
    lifecycle = Lifecycle(units)
    await lifecycle.start()
    history = cast(ConversationHistoryUnit, await resolve(container.conversation_history))
    return lifecycle, history


async def run_export(args: argparse.Namespace) -> int:
    """Export; prints ``{"exported": n, "file": ...}``."""
    fmt = _format(args, args.output)
    fields = args.fields.split(",") if args.fields else None
    lifecycle, history = await _history()
    try:
        count = await ExportManager(history).export_conversations(
            args.conversations, fmt, args.output, not args.no_metadata, fields
        )
    finally:
        await lifecycle.stop()
    print(json.dumps({"exported": count, "file": str(args.output), "format": fmt.value}))
    return 0


async def run_import(args: argparse.Namespace) -> int:
    """Import; prints the counts as JSON."""
    fmt = _format(args, args.input)
    mapping = {}
    for item in args.map:
        source, sep, target = item.partition("=")
        if not sep:
            raise SystemExit(f"error: --map takes FILE_FIELD=FIELD, got {item!r}")
        mapping[source] = target
    lifecycle, history = await _history()
    try:
        counts = await ImportManager(history).import_conversations(
            args.input, fmt, args.merge, mapping or None
        )
    finally:
        await lifecycle.stop()
    print(json.dumps(counts.as_dict()))
    return 0
