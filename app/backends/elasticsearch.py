"""The Elasticsearch resource: an ``AsyncElasticsearch`` client, started only when hosts are set."""

from __future__ import annotations

from collections.abc import AsyncIterator

from elasticsearch import AsyncElasticsearch

from settings import ElasticsearchSettings

__all__ = ["elasticsearch_client", "ping_elasticsearch"]


async def elasticsearch_client(
    settings: ElasticsearchSettings,
) -> AsyncIterator[AsyncElasticsearch]:
    """Create the client, check the cluster answers, close the client's transport at stop."""
    basic_auth = None
    if settings.username is not None:
        password = "" if settings.password is None else settings.password.get_secret_value()
        basic_auth = (settings.username, password)
    client = AsyncElasticsearch(
        settings.hosts,
        api_key=None if settings.api_key is None else settings.api_key.get_secret_value(),
        basic_auth=basic_auth,
        request_timeout=settings.request_timeout_s,
        verify_certs=settings.verify_certs,
    )
    try:
        await ping_elasticsearch(client)
        yield client
    finally:
        await client.close()


async def ping_elasticsearch(client: AsyncElasticsearch) -> None:
    """Ask the cluster for its info; raises if it does not answer as Elasticsearch."""
    await client.info()
