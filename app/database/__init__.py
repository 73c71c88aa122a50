"""The database module: the original design's Postgres helper client, migrations, a registry.

``PostgreSQLClient`` runs the helper methods (named ``:name`` parameters, ``insert``,
``update``, ``fetch_one``/``fetch_all``, ``transaction()`` with savepoints, stats, vacuum) over
the container's asyncpg pool; see the README's "Database" section.
"""

from app.database.client import PostgreSQLClient
from app.database.runner import COPY_MIN_ROWS, QueryRunner
from app.database.sql_text import CompiledQuery, compile_query, split_statements
from app.database.transaction import DatabaseSession, Transaction, current_transaction

__all__ = [
    "COPY_MIN_ROWS",
    "CompiledQuery",
    "DatabaseSession",
    "PostgreSQLClient",
    "QueryRunner",
    "Transaction",
    "compile_query",
    "current_transaction",
    "split_statements",
]
