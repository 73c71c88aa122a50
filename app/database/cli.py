"""``python -m app migrate [status|repair] [--dry-run] [--dir DIR ...]``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from app.database.client import PostgreSQLClient
from app.database.migrator import MigrationState, load_migration_runner
from app.logging import configure_logging
from settings import load_settings

__all__ = ["add_migrate_parser", "migrate", "status_table"]

ACTIONS = ("apply", "status", "repair")


def add_migrate_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "migrate",
        help="apply pending schema migrations (or: status, repair)",
        description="Apply the product's pending migrations, then POSTGRES__MIGRATION_DIRS' and "
        "--dir's; `status` lists applied and pending files; `repair` accepts the new checksum "
        "of applied files changed since (after a review).",
    )
    parser.add_argument("action", nargs="?", choices=ACTIONS, default="apply")
    parser.add_argument(
        "--dry-run", action="store_true", help="list what would be applied, change nothing"
    )
    parser.add_argument(
        "--dir",
        dest="dirs",
        action="append",
        type=Path,
        default=[],
        help="another migration directory, after POSTGRES__MIGRATION_DIRS (repeatable)",
    )


def status_table(states: Sequence[MigrationState]) -> str:
    header = ("version", "name", "state", "applied_at", "source")
    rows = [header] + [
        (
            f"{s.version:04d}",
            s.name,
            s.state,
            "-" if s.applied_at is None else s.applied_at.isoformat(timespec="seconds"),
            s.source,
        )
        for s in states
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


async def migrate(action: str, *, dry_run: bool = False, dirs: Sequence[Path] = ()) -> int:
    """Run one ``migrate`` action against the configured Postgres (embedded or server)."""
    settings = load_settings()
    configure_logging(settings.log)
    client = PostgreSQLClient.from_settings(settings)
    await client.connect()
    try:
        assert client.pool is not None
        extra = [*settings.postgres.migration_dirs, *dirs]
        runner = await load_migration_runner(client.pool, extra)
        if action == "status":
            print(status_table(await runner.status()))
            return 0
        if action == "repair":
            repaired = await runner.repair()
            for migration in repaired:
                print(f"accepted the new checksum of {migration.label}: {migration.checksum}")
            if not repaired:
                print("no applied migration has changed; nothing to repair")
            return 0
        pending = await runner.apply(dry_run=dry_run)
        verb = "would apply" if dry_run else "applied"
        for migration in pending:
            print(f"{verb} {migration.label}")
        if not pending:
            print("the database is up to date; nothing to apply")
        return 0
    finally:
        await client.close()
