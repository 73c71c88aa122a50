"""The original database module's usage examples, run as written but for the import.

Run it on the embedded Postgres (the defaults) or on a server (POSTGRES__DSN=...); with
DEPLOYMENT_MODE=distributed and REDIS__URL set it also runs the RedisClient examples:

    python examples/database_usage.py
"""

from __future__ import annotations

import asyncio

import structlog

# The only line that differs from code written for the original module:
from app.database import (
    ConnectionManager,
    RedisClient,
    create_database_client,
    is_backend_registered,
    list_backends,
)
from settings import DeploymentMode, Settings, load_settings

logger = structlog.get_logger("examples.database_usage")


async def database_examples(settings: Settings) -> None:
    # Create and initialise a client (connected, schema migrated); the caller owns it.
    client = await create_database_client(settings, logger=logger, auto_init_schema=True)
    try:
        await client.execute(
            "CREATE TABLE IF NOT EXISTS users ("
            " user_id serial PRIMARY KEY, email text UNIQUE NOT NULL,"
            " active boolean NOT NULL DEFAULT true, created_at timestamptz DEFAULT now())"
        )

        # insert returns the first column of the new row
        user_id = await client.insert("users", {"email": "ada@example.com", "active": True})
        await client.insert("users", {"email": "bob@example.com", "active": False})

        # named parameters
        result = await client.fetch_all(
            "SELECT * FROM users WHERE active = :active", {"active": True}
        )
        print("active users:", [row["email"] for row in result])

        row = await client.fetch_one(
            "SELECT email FROM users WHERE user_id = :user_id", {"user_id": user_id}
        )
        print("fetched:", row)

        rows = await client.update(
            "users", {"active": False}, "email = :email", {"email": "ada@example.com"}
        )
        print("updated rows:", rows)

        await client.execute_many(
            "INSERT INTO users (email) VALUES (:email)",
            [{"email": f"user{i}@example.com"} for i in range(3)],
        )

        # Automatically commits on success, rolls back on error
        async with client.transaction() as session:
            await session.execute(
                "UPDATE users SET active = :active WHERE email = :email",
                {"active": True, "email": "bob@example.com"},
            )
            await session.insert("users", {"email": "carol@example.com"})

        health = await client.health_check()
        print("health:", health["status"], health["server_version"])

        await client.vacuum_analyze("users")
        stats = await client.get_table_stats("users")
        print("users table:", stats["row_count"], "rows,", stats["total_size"])
        print("tables:", [t["tablename"] for t in await client.get_all_tables_stats()])
        print("backends:", list_backends(), is_backend_registered("postgres"))
    finally:
        await client.execute("DROP TABLE IF EXISTS users")
        await client.close()


async def state_examples(settings: Settings) -> None:
    manager = ConnectionManager(settings, logger=logger)
    backend = await manager.get_state_backend()

    allowed, remaining = await backend.rate_limit_check(
        user_id="user_123", limit=10, window_seconds=60
    )
    print("rate limit:", allowed, remaining)
    await manager.close()

    if settings.deployment_mode is not DeploymentMode.DISTRIBUTED:
        return
    redis = RedisClient(settings.redis.connection_url().get_secret_value())
    await redis.connect()
    try:
        allowed, remaining = await redis.rate_limit_check(
            user_id="user_123", limit=10, window_seconds=60
        )
        if await redis.acquire_lock("job:123", ttl_seconds=60):
            try:
                pass  # Do work
            finally:
                await redis.release_lock("job:123")
        await redis.cache_embedding("text-hash", [0.1, 0.2, 0.3], ttl=3600)
        print("cached embedding:", await redis.get_cached_embedding("text-hash"))
        await redis.set_value("greeting", {"hello": "world"}, ttl=60)
        print("value:", await redis.get_value("greeting"), await redis.increment("hits"))
        await redis.delete("greeting")
        await redis.delete("hits")
        print("redis stats:", sorted(await redis.get_stats()))
    finally:
        await redis.disconnect()


async def main() -> None:
    settings = load_settings()
    await database_examples(settings)
    await state_examples(settings)


if __name__ == "__main__":
    asyncio.run(main())
