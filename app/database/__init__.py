"""The database module: the original design's Postgres helper client, migrations, a registry.

``PostgreSQLClient`` runs the helper methods (named ``:name`` parameters, ``insert``,
``update``, ``fetch_one``/``fetch_all``, ``transaction()`` with savepoints, stats, vacuum) over
the container's asyncpg pool; ``MigrationRunner`` applies ``NNNN_name.sql`` files once per
database; ``register_backend``/``create_database_client`` pick a backend by name;
``ConnectionManager`` and ``RedisClient`` are the original helpers over the state backends.
See the README's "Database" section.
"""

from app.database.client import PostgreSQLClient
from app.database.compat import ConnectionManager, RedisClient
from app.database.migration_files import Migration, discover, migration_sources
from app.database.migrator import (
    LEDGER_TABLE,
    MigrationRunner,
    MigrationState,
    load_migration_runner,
)
from app.database.registry import (
    BackendFactory,
    DatabaseClient,
    create_database_client,
    get_backend,
    is_backend_registered,
    list_backends,
    register_backend,
    unregister_backend,
)
from app.database.runner import COPY_MIN_ROWS, QueryRunner
from app.database.sql_text import CompiledQuery, compile_query, split_statements
from app.database.transaction import DatabaseSession, Transaction, current_transaction

__all__ = [
    "COPY_MIN_ROWS",
    "LEDGER_TABLE",
    "BackendFactory",
    "CompiledQuery",
    "ConnectionManager",
    "DatabaseClient",
    "DatabaseSession",
    "Migration",
    "MigrationRunner",
    "MigrationState",
    "PostgreSQLClient",
    "QueryRunner",
    "RedisClient",
    "Transaction",
    "compile_query",
    "create_database_client",
    "current_transaction",
    "discover",
    "get_backend",
    "is_backend_registered",
    "list_backends",
    "load_migration_runner",
    "migration_sources",
    "register_backend",
    "split_statements",
    "unregister_backend",
]
