"""``EntityStore``: the write path (one change = entity row + one event) and entity reads.

Single changes run as one statement each (``app.entities.sql``): a create is one round trip,
an update or delete a read and one round trip. ``apply`` writes many changes in one
transaction. After every commit the store calls its commit listeners (the relay wakes up on
them: a ``NOTIFY`` inside the transaction would serialise commits).

Entity and event ids are random UUIDs from the OS's generator (``ids``).

The store is put together from one module per part:

- ``single_writes``: ``create``, ``update``, ``delete``
- ``batch_writes``: ``apply``
- ``reads``: ``get``, ``list`` (and ``EntityPage``, ``MAX_PAGE``)
- ``store_core``: the pool, the registry and the commit listeners they share
- ``states`` (validation, rows to models, JSON), ``pending`` (events before their insert),
  ``refusals`` (why a write was refused)
"""

from __future__ import annotations

from app.entities.batch_writes import BatchWrites
from app.entities.reads import MAX_PAGE, EntityPage, EntityReads
from app.entities.single_writes import SingleWrites

__all__ = ["MAX_PAGE", "EntityPage", "EntityStore"]


class EntityStore(SingleWrites, BatchWrites, EntityReads):
    """Entities of the registered types on an asyncpg pool."""
