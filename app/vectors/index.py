"""The async vector index: namespaces of unit vectors with ids and metadata, persisted safely.

Every public method is ``async``. Work on a namespace runs under that namespace's
``asyncio.Lock`` (``locks.py``), so a query never sees a half-applied batch. Work of more
than ``INLINE_MAX_CELLS`` float operations (2^26, about 5 ms of scanning: big batches,
batched queries, snapshots) runs on a bounded ``ThreadPoolExecutor`` of ``threads`` workers
whose initializer limits FAISS's OpenMP to one thread each, so the pool never
oversubscribes the cores through FAISS. Smaller work (a query over 20k x 1536, a batch of
20k x 128) runs inline: handing it to a thread cost 0.5-0.7 ms on an idle machine, and
beside a busy event loop the worker waits for the GIL up to the interpreter's 5 ms switch
interval at every step, more than the work itself. Queries use the cheaper of two exact
kernels as measured per shape (``kernels.py``); numpy's BLAS sizes its own thread pool
(``OPENBLAS_NUM_THREADS``).

Unfiltered queries of namespaces of more than ``BATCH_MIN_CELLS`` cells from concurrent
callers are answered together in one matrix product (``batching.py``); a lone query is a
batch of one.

``save()`` and ``load()`` run one at a time. ``save()`` holds every namespace lock while
the snapshot's bytes are written from the live rows (into the page cache, checksummed),
then releases them for the fsyncs and the switch; ``load()`` reads and verifies outside
the locks and takes them only to swap the state (``snapshot.py``, ``snapshot_reader.py``).
The first ``save()`` or ``load()`` takes the directory's writer
lock (``IndexLockedError`` if another process holds it); ``close()`` waits for calls in
flight and releases it.

``VectorIndex(..., read_only=True)`` is a reader beside that writer (``python -m app check``):
``load()`` verifies the current snapshot as usual but takes no lock and creates nothing, and
every write (upsert, delete, save, autosave) raises :class:`ReadOnlyIndexError`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import numpy as np
import numpy.typing as npt
import structlog

from app.errors import BackendClosedError, NotStartedError, ReadOnlyIndexError
from app.vectors import snapshot
from app.vectors.batching import QueryBatcher
from app.vectors.filters import Filter, compile_filter
from app.vectors.lockfile import WriterLock
from app.vectors.locks import NamespaceLocks
from app.vectors.models import BatchItem, VectorMatch, VectorRecord
from app.vectors.snapshot_reader import read_snapshot
from app.vectors.store import NamespaceStore, StoredRecord, copy_metadata
from app.vectors.validation import (
    Batch,
    check_id,
    check_id_collection,
    check_metadata,
    check_namespace,
    check_top_k,
    normalised_vector,
    prepare_batch,
    split_items,
)

__all__ = ["BATCH_MIN_CELLS", "INLINE_MAX_CELLS", "VectorIndex"]

log = structlog.get_logger(__name__)

T = TypeVar("T")

# Work below this many float operations runs inline (tests set 0 to force the pool).
INLINE_MAX_CELLS: int = 1 << 26
# Unfiltered queries of namespaces of at least this many cells are batched (batching.py).
BATCH_MIN_CELLS: int = 1 << 22
_FILTER_CELLS_PER_ROW: Final = 256
# A batch upsert costs about 16 scanned floats per float it brings (checks, norms, copies,
# ids): 10k x 1536 took 23.5 ms, a scan of 20k x 1536 about 3 ms.
_UPSERT_CELLS_PER_FLOAT: Final = 16


async def _wait_uncancelled(*futures: asyncio.Future[Any]) -> None:
    """Wait until one of ``futures`` is done, even if cancelled meanwhile (then re-raise):
    a save must keep the namespace locks while its worker still reads the live rows."""
    cancelled = False
    while not any(future.done() for future in futures):
        try:
            await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError


def _init_worker(omp_threads: int) -> None:
    import faiss

    faiss.omp_set_num_threads(omp_threads)


class VectorIndex:
    """Cosine-similarity search over string ids in isolated namespaces, saved as snapshots."""

    def __init__(
        self,
        index_path: str | Path,
        dimension: int,
        *,
        threads: int = 0,
        metric: Literal["cosine"] = "cosine",
        read_only: bool = False,
    ) -> None:
        if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension <= 0:
            msg = f"dimension must be a positive int, got {dimension!r}"
            raise ValueError(msg)
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            msg = f"threads must be an int >= 0 (0 = one per core), got {threads!r}"
            raise ValueError(msg)
        if str(metric) != "cosine":
            msg = f"metric must be 'cosine', got {metric!r}"
            raise ValueError(msg)
        self.index_path = Path(index_path)
        self.dimension = dimension
        self.metric = metric
        self.read_only = bool(read_only)
        self.threads = threads or os.cpu_count() or 1
        self._executor = ThreadPoolExecutor(
            max_workers=self.threads,
            thread_name_prefix="vectors",
            initializer=_init_worker,
            initargs=(1,),
        )
        self._stores: dict[str, NamespaceStore] = {}
        self._lock = NamespaceLocks()
        self._save_gate = asyncio.Lock()
        self._writer = WriterLock(self.index_path)
        self._generation = 0
        self._saved_generation = 0
        self._loaded_snapshot: str | None = None
        self._loaded = False
        self._closed = False
        self._autosave: asyncio.Task[None] | None = None
        self._pruning: asyncio.Future[None] | None = None
        self._batcher = QueryBatcher(self._lock, self._search_batch)

    # -- plumbing -------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            msg = f"vector index {self.index_path} is closed"
            raise BackendClosedError(msg)

    def _check_writable(self, operation: str) -> None:
        self._check_open()
        if self.read_only:
            msg = (
                f"{operation}() refused: vector index {self.index_path} is open read-only "
                "(read_only=True) and never writes; write through the writer process's index"
            )
            raise ReadOnlyIndexError(msg)

    async def _run(self, cells: int, fn: Callable[[], T]) -> T:
        """Run ``fn`` inline when small, else on the pool; callers hold the namespace lock."""
        self._check_open()  # close() may have finished while the caller waited for the lock
        if cells <= INLINE_MAX_CELLS:
            return fn()
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    # -- writes ---------------------------------------------------------------------

    async def upsert(
        self,
        namespace: str,
        vector_id: str,
        vector: npt.ArrayLike,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Insert ``vector_id`` or replace its vector and metadata in place."""
        self._check_writable("upsert")
        check_namespace(namespace)
        checked_id = check_id(vector_id)
        checked_metadata = check_metadata(metadata)
        unit = normalised_vector(vector, self.dimension)
        async with self._lock(namespace):
            store = self._store(namespace)
            await self._run(
                self.dimension, lambda: store.upsert_one(checked_id, unit, checked_metadata)
            )
            self._generation += 1

    async def upsert_many(self, namespace: str, items: Iterable[BatchItem]) -> None:
        """Upsert a batch of ``VectorRecord``, ``(id, vector)`` or ``(id, vector, metadata)``.

        The whole batch is validated first; a rejected batch changes nothing. A repeated id
        keeps its last occurrence.
        """
        self._check_writable("upsert_many")
        ids, vectors, metadata = split_items(items)
        await self.upsert_arrays(namespace, ids, vectors, metadata)

    async def upsert_arrays(
        self,
        namespace: str,
        ids: Sequence[str],
        vectors: npt.ArrayLike | Sequence[npt.ArrayLike],
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> None:
        """Upsert a batch given as columns: ids, an ``n x dimension`` array, optional metadata.

        The fastest way in for large batches (no per-item tuples).
        """
        self._check_writable("upsert_arrays")
        check_namespace(namespace)
        check_id_collection(ids)
        await self._apply(
            namespace,
            len(ids) * self.dimension * _UPSERT_CELLS_PER_FLOAT,
            lambda: prepare_batch(ids, vectors, metadata, self.dimension),
        )

    async def _apply(self, namespace: str, cells: int, prepare: Callable[[], Batch]) -> None:
        """Validate (``prepare``) then apply a batch, under the namespace lock."""
        async with self._lock(namespace):
            store = self._store(namespace)

            def apply() -> bool:
                batch = prepare()
                store.upsert(batch.ids, batch.vectors, batch.scale, batch.metadata, batch.positions)
                return bool(batch.ids)

            if await self._run(cells, apply):
                self._generation += 1

    def _store(self, namespace: str) -> NamespaceStore:
        """The namespace's store, created on first write (on the loop: readers iterate them)."""
        store = self._stores.get(namespace)
        if store is None:
            store = self._stores[namespace] = NamespaceStore(self.dimension)
        return store

    async def delete(self, namespace: str, vector_id: str) -> bool:
        """Remove ``vector_id``; ``True`` iff it existed. Costs O(dimension)."""
        self._check_writable("delete")
        return await self.delete_many(namespace, [vector_id]) == 1

    async def delete_many(self, namespace: str, ids: Iterable[str]) -> int:
        """Remove every listed id that exists; returns how many were removed."""
        self._check_writable("delete_many")
        check_namespace(namespace)
        checked = [
            check_id(vector_id, row=row) for row, vector_id in enumerate(check_id_collection(ids))
        ]

        async with self._lock(namespace):
            store = self._stores.get(namespace)
            if store is None:
                return 0
            removed = await self._run(len(checked) * self.dimension, lambda: store.delete(checked))
            if removed:
                self._generation += 1
            return removed

    # -- reads ----------------------------------------------------------------------

    async def query(
        self,
        namespace: str,
        vector: npt.ArrayLike,
        top_k: int = 10,
        *,
        filter: Filter | None = None,
    ) -> list[VectorMatch]:
        """The ``min(top_k, matches)`` most similar vectors, best first (filter before ranking)."""
        self._check_open()
        check_namespace(namespace)
        k = check_top_k(top_k)
        where = compile_filter(filter)
        unit = normalised_vector(vector, self.dimension)
        store = self._stores.get(namespace)
        if where is None and store is not None and len(store) * self.dimension > BATCH_MIN_CELLS:
            return await self._batcher.query(namespace, unit, k)
        async with self._lock(namespace):
            store = self._stores.get(namespace)
            if store is None or len(store) == 0:
                return []
            cells = len(store) * (self.dimension + (0 if where is None else _FILTER_CELLS_PER_ROW))
            return await self._run(cells, lambda: store.search(unit, k, where))

    async def _search_batch(
        self, namespace: str, queries: npt.NDArray[np.float32], ks: list[int]
    ) -> list[list[VectorMatch]]:
        """Unfiltered queries as rows of one matrix; the batcher holds the namespace lock."""
        self._check_open()  # close() may have finished while the batch waited for the lock
        store = self._stores.get(namespace)
        if store is None:
            return [[] for _ in ks]
        cells = len(store) * self.dimension * len(ks)
        ranked = await self._run(cells, lambda: store.rank_many(queries, ks))
        return [store.matches(result) for result in ranked]

    async def get(self, namespace: str, ids: Iterable[str]) -> list[VectorRecord]:
        """The stored records of those ids that exist, in the order asked (vectors unit-norm)."""
        self._check_open()
        check_namespace(namespace)
        checked = [
            check_id(vector_id, row=row) for row, vector_id in enumerate(check_id_collection(ids))
        ]
        lock = self._lock(namespace)
        if lock.locked():
            async with lock:
                found = self._read(namespace, checked)
        else:
            # Pool work on a namespace runs only while its lock is held, and nothing runs on
            # the loop before this synchronous read returns: no lock needed.
            found = self._read(namespace, checked)
        return [VectorRecord(item.id, item.vector, copy_metadata(item.metadata)) for item in found]

    def _read(self, namespace: str, ids: list[str]) -> list[StoredRecord]:
        store = self._stores.get(namespace)
        return [] if store is None else store.get(ids)

    async def count(self, namespace: str) -> int:
        """How many vectors ``namespace`` holds (0 for an unknown namespace)."""
        self._check_open()
        check_namespace(namespace)
        store = self._stores.get(namespace)
        return 0 if store is None else len(store)

    async def namespaces(self) -> list[str]:
        """The namespaces holding at least one vector, sorted."""
        self._check_open()
        return sorted(name for name, store in self._stores.items() if len(store))

    async def ping(self) -> None:
        """Raise unless the index is open and ``load()`` has completed."""
        self._check_open()
        if not self._loaded:
            msg = f"vector index {self.index_path} is not loaded; call load() at start"
            raise NotStartedError(msg)

    # -- persistence ----------------------------------------------------------------

    async def save(self) -> None:
        """Write a complete snapshot and switch to it atomically (see ``snapshot.py``).

        Older snapshots are removed on a worker thread after the switch; ``close()`` waits
        for that and raises its error, if any; the next ``save()`` logs a failed removal
        (``vectors.prune_failed``) and saves anyway, its own removal retrying.
        """
        self._check_writable("save")
        async with self._save_gate:
            self._check_open()
            await self._save()

    async def _save(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await self._await_pruning()
        except OSError:
            # Only older snapshots were left behind: this save goes ahead (unsaved changes
            # matter more), and its own prune removes them again.
            log.exception("vectors.prune_failed", path=str(self.index_path))
        await loop.run_in_executor(self._executor, self._writer.acquire)
        mutex = self._writer.save_mutex()
        in_files: asyncio.Future[None] = loop.create_future()

        def mark_in_files() -> None:
            if not in_files.done():
                in_files.set_result(None)

        def data_written() -> None:  # on a snapshot thread
            loop.call_soon_threadsafe(mark_in_files)

        def write(stores: list[tuple[str, NamespaceStore]]) -> snapshot.Written:
            # The live rows, not a copy: every namespace lock is held until data_written().
            data = {
                name: snapshot.NamespaceData(store.vectors(), store.ids, store.metadata())
                for name, store in stores
            }
            with mutex:
                return snapshot.write_snapshot(
                    self.index_path, self.dimension, data, on_data_written=data_written
                )

        def prune(written: snapshot.Written) -> None:
            with mutex:
                snapshot.prune(self.index_path, written)

        async with self._lock.exclusive():
            generation = self._generation
            # Listed on the loop while every namespace lock is held (each store has one): the
            # worker writes exactly these, unchanged until their bytes are in the files. Then
            # the locks go, and the fsyncs and the switch run while writers carry on (copying
            # the rows first took as long as writing them, and delayed every save by that).
            # Namespaces created meanwhile get free locks and are left out of this snapshot.
            stores = [(name, store) for name, store in self._stores.items() if len(store)]
            writing = loop.run_in_executor(self._executor, write, stores)
            await _wait_uncancelled(in_files, writing)
        written = await writing
        self._saved_generation = generation
        self._pruning = loop.run_in_executor(self._executor, prune, written)

    async def _await_pruning(self) -> None:
        pruning, self._pruning = self._pruning, None
        if pruning is not None:
            await pruning

    async def load(self) -> None:
        """Replace the contents with the current snapshot (none on disk: empty index).

        Raises ``SnapshotCorruptError`` when the snapshot fails verification, or when
        ``CURRENT`` is missing beside snapshot directories; the contents are then left as
        they were, and nothing on disk is deleted. Read-only: the same checks, without the
        writer lock (nothing on disk is created or changed).
        """
        self._check_open()
        async with self._save_gate:
            self._check_open()
            loop = asyncio.get_running_loop()
            if not self.read_only:
                await loop.run_in_executor(self._executor, self._writer.acquire)
            name, stores = await loop.run_in_executor(
                self._executor, read_snapshot, self.index_path, self.dimension
            )
            async with self._lock.exclusive():
                self._stores = stores
                for namespace in stores:  # every store has a lock, for exclusive() to hold
                    self._lock(namespace)
                self._generation += 1
                self._saved_generation = self._generation
            self._loaded_snapshot = name
            self._loaded = True
        log.info(
            "vectors.loaded",
            path=str(self.index_path),
            snapshot=name,
            read_only=self.read_only,
            namespaces=len(stores),
            vectors=sum(len(store) for store in stores.values()),
        )

    def start_autosave(self, interval_s: float) -> None:
        """Save every ``interval_s`` seconds while something changed; stopped by ``close()``."""
        self._check_writable("start_autosave")
        if not interval_s > 0 or interval_s == float("inf"):
            msg = f"interval_s must be a finite number > 0, got {interval_s!r}"
            raise ValueError(msg)
        if self._autosave is not None:
            msg = "autosave is already running"
            raise RuntimeError(msg)
        self._autosave = asyncio.get_running_loop().create_task(
            self._autosave_loop(interval_s), name=f"vectors-autosave:{self.index_path}"
        )

    async def _autosave_loop(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            if self._generation != self._saved_generation:
                try:
                    await self.save()
                except BackendClosedError:
                    return
                except Exception:
                    # Logged, and the task stays alive: the next tick retries, and the
                    # shutdown save raises whatever still fails then.
                    log.exception("vectors.autosave_failed", path=str(self.index_path))

    async def close(self) -> None:
        """Stop autosave, wait for work in flight, free the pool and the writer lock. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._autosave is not None:
            self._autosave.cancel()
            with suppress(asyncio.CancelledError):
                await self._autosave
            self._autosave = None
        async with self._save_gate:  # a save in flight finishes first
            try:
                await self._await_pruning()
            finally:
                async with self._lock.exclusive():  # so does every other call in flight
                    self._executor.shutdown(wait=False)
                    self._writer.release()
                    # Free the vectors now: the index refers to itself (the batcher holds a
                    # bound method), so without this they waited for a full collection.
                    self._stores = {}
        log.info("vectors.closed", path=str(self.index_path))
