"""Migration files: ``NNNN_name.sql`` in the product's package and in users' directories.

The version is the number (gaps allowed: 0001, 0100, 0200 ...); it must be unique across all
directories. The checksum is SHA-256 of the text with line endings normalised, so a checkout
with CRLF endings is not a change. A file holding the line ``-- migrate: no-transaction`` runs
outside a transaction, one statement at a time (for ``CREATE INDEX CONCURRENTLY`` and the
like); make such a file safe to run again, since a failure half-way cannot be rolled back.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Final

from app.errors import MigrationFileError

__all__ = [
    "PRODUCT_SOURCE",
    "Migration",
    "checksum",
    "discover",
    "migration_sources",
]

PRODUCT_SOURCE: Final = "app.database.migrations"
FILE_NAME: Final = re.compile(r"(?P<version>\d{4,})_(?P<name>[a-z0-9][a-z0-9_]*)\.sql\Z")
NO_TRANSACTION: Final = re.compile(r"^[ \t]*--[ \t]*migrate:[ \t]*no-transaction[ \t]*$", re.M)


@dataclass(frozen=True)
class Migration:
    """One migration file: where it is, its version, name, SQL and checksum."""

    version: int
    name: str
    source: str
    sql: str
    checksum: str
    transactional: bool

    @property
    def file_name(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"

    @property
    def label(self) -> str:
        """The file as a person finds it (``app.database.migrations/0001_x.sql``)."""
        return f"{self.source}/{self.file_name}"


def checksum(sql: str) -> str:
    normalised = sql.replace("\r\n", "\n").replace("\r", "\n")
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def _read(entry: Traversable, source: str) -> Migration:
    match = FILE_NAME.match(entry.name)
    if match is None:
        raise MigrationFileError(
            f"{source}/{entry.name}: a migration file is named NNNN_name.sql (4+ digits, then "
            "lower-case letters, digits and _), e.g. 1001_add_orders.sql"
        )
    try:
        sql = entry.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MigrationFileError(f"{source}/{entry.name} cannot be read: {exc}") from exc
    return Migration(
        version=int(match.group("version")),
        name=match.group("name"),
        source=source,
        sql=sql,
        checksum=checksum(sql),
        transactional=NO_TRANSACTION.search(sql) is None,
    )


def _read_source(directory: Traversable, source: str) -> list[Migration]:
    if not directory.is_dir():
        raise MigrationFileError(f"migration directory {source} does not exist or is not one")
    entries = [e for e in directory.iterdir() if e.is_file() and e.name.endswith(".sql")]
    return sorted((_read(entry, source) for entry in entries), key=lambda m: m.version)


def migration_sources(extra_dirs: Iterable[Path | str] = ()) -> list[tuple[str, Traversable]]:
    """The product's own migrations first, then each of ``extra_dirs`` in order."""
    sources: list[tuple[str, Traversable]] = [(PRODUCT_SOURCE, resources.files(PRODUCT_SOURCE))]
    sources.extend((str(Path(d)), Path(d)) for d in extra_dirs)
    return sources


def discover(sources: Sequence[tuple[str, Traversable]]) -> list[Migration]:
    """Every migration, in the order to apply: by source, then by version.

    A version used twice (in one directory or across them) is refused, naming both files.
    """
    seen: dict[int, Migration] = {}
    ordered: list[Migration] = []
    for source, directory in sources:
        for migration in _read_source(directory, source):
            other = seen.get(migration.version)
            if other is not None:
                raise MigrationFileError(
                    f"migration version {migration.version:04d} is used twice: {other.label} "
                    f"and {migration.label}; renumber yours (the product uses 0001-0999)"
                )
            seen[migration.version] = migration
            ordered.append(migration)
    return ordered
