"""Data units: memory, string, stream (bounded fan-out) and file (atomic, locked, recoverable)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from app.data import (
    DataUnitClosedError,
    DataUnitConfig,
    DataUnitConfigError,
    DataUnitCorruptError,
    DataUnitFile,
    DataUnitLockedError,
    DataUnitMemory,
    DataUnitOverflowError,
    DataUnitStream,
    DataUnitString,
    DataUnitType,
    DataUnitTypeError,
)


async def test_memory_unit_returns_what_was_set_and_clears_to_initial_value() -> None:
    """A memory unit hands back the set value and clear() restores initial_value."""
    unit = DataUnitMemory(DataUnitConfig(data_type="memory", name="m", initial_value=7))
    await unit.initialize()
    assert await unit.get() == 7
    await unit.set({"message": "Hello World"})
    assert await unit.get() == {"message": "Hello World"}
    await unit.clear()
    assert await unit.get() == 7
    assert "last_updated" in unit.metadata


async def test_unit_initialises_on_first_use_and_refuses_calls_after_shutdown() -> None:
    """get() works without initialize(); after shutdown() every call raises DataUnitClosedError."""
    unit = DataUnitMemory()
    await unit.set(1)
    started = unit.is_initialized
    await unit.shutdown()
    await unit.shutdown()
    assert (started, unit.is_initialized) == (True, False)
    with pytest.raises(DataUnitClosedError):
        await unit.get()
    with pytest.raises(DataUnitClosedError):
        await unit.set_metadata("k", 1)


def test_config_refuses_unknown_type_and_bad_cache_size() -> None:
    """DataUnitConfig names the bad field and value: unknown data_type, cache_size < 1."""
    with pytest.raises(DataUnitConfigError, match="data_type must be one of"):
        DataUnitConfig(data_type="tape")
    with pytest.raises(DataUnitConfigError, match="cache_size"):
        DataUnitConfig(cache_size=0)
    with pytest.raises(DataUnitConfigError, match="encoding"):
        DataUnitConfig(encoding="no-such-codec")
    assert DataUnitConfig(data_type="file").kind is DataUnitType.FILE


async def test_string_unit_appends_and_refuses_non_text() -> None:
    """A string unit starts at its initial value, appends, and refuses a non-str value."""
    unit = DataUnitString("Hello")
    await unit.append(", world")
    assert await unit.get() == "Hello, world"
    with pytest.raises(DataUnitTypeError, match="must be a str"):
        await unit.set(3)
    with pytest.raises(DataUnitTypeError):
        await unit.append(b"bytes")  # type: ignore[arg-type]
    await unit.clear()
    assert await unit.get() == "Hello"


async def test_stream_delivers_each_value_to_every_subscriber_in_order() -> None:
    """Every subscriber's queue receives every value set after it subscribed, in order."""
    stream = DataUnitStream(DataUnitConfig(data_type="stream", cache_size=10))
    first = await stream.subscribe()
    second = await stream.subscribe()
    for value in range(3):
        await stream.set(value)
    assert [first.get_nowait() for _ in range(3)] == [0, 1, 2]
    assert [await second.get() for _ in range(3)] == [0, 1, 2]
    await stream.unsubscribe(first)
    await stream.set(3)
    assert first.empty()
    assert await second.get() == 3
    assert await stream.get() == 3


async def test_slow_subscriber_is_detached_with_an_overflow_error_after_draining() -> None:
    """A full queue detaches its subscriber: it reads what was queued, then the overflow error."""
    stream = DataUnitStream(DataUnitConfig(data_type="stream", cache_size=2))
    slow = await stream.subscribe()
    for value in range(5):
        await stream.set(value)
    assert slow.qsize() == 2
    assert slow.overflowed
    assert stream.subscriber_count == 0
    assert [await slow.get(), await slow.get()] == [0, 1]
    with pytest.raises(DataUnitOverflowError, match=r"queue of 2 was full"):
        await slow.get()


async def test_shutdown_wakes_a_waiting_subscriber_with_closed_error() -> None:
    """A subscriber blocked on an empty queue gets DataUnitClosedError when the stream stops."""
    stream = DataUnitStream()
    queue = await stream.subscribe()
    waiter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    await stream.shutdown()
    with pytest.raises(DataUnitClosedError):
        await waiter


async def test_file_unit_round_trips_json_and_keeps_a_backup(tmp_path: Path) -> None:
    """A file unit stores JSON, survives a new instance, and keeps the previous version."""
    path = tmp_path / "state.json"
    unit = DataUnitFile(str(path))
    assert await unit.get() is None
    await unit.set({"a": 1})
    await unit.set({"a": 2})
    assert await DataUnitFile(path).get() == {"a": 2}
    assert json.loads(path.with_name("state.json.bak").read_text()) == {"a": 1}
    with pytest.raises(DataUnitTypeError, match="JSON values"):
        await unit.set({1, 2})
    assert json.loads(path.read_text()) == {"a": 2}


async def test_file_unit_recovers_from_a_damaged_file(tmp_path: Path) -> None:
    """A torn current file reads as the backup's value, logged, and the backup is restored."""
    path = tmp_path / "state.json"
    unit = DataUnitFile(path)
    await unit.set([1])
    await unit.set([1, 2])
    path.write_text('[1, 2, "torn')
    with capture_logs() as logs:
        assert await unit.get() == [1]
    assert any(entry["event"] == "data_unit.recovered" for entry in logs)
    assert json.loads(path.read_text()) == [1]


async def test_file_unit_with_file_and_backup_damaged_raises_corrupt(tmp_path: Path) -> None:
    """Both versions unreadable: DataUnitCorruptError naming the file, nothing overwritten."""
    path = tmp_path / "state.json"
    path.write_text("{")
    path.with_name("state.json.bak").write_text("nope")
    with pytest.raises(DataUnitCorruptError, match=r"state\.json"):
        await DataUnitFile(path).get()
    assert path.read_text() == "{"


def test_file_unit_waits_for_another_process_lock_then_times_out(tmp_path: Path) -> None:
    """A writer in another process holding the flock blocks us until lock_timeout_s, then errors."""
    path = tmp_path / "state.json"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl,os,sys;"
            f"fd=os.open({str(path) + '.lock'!r},os.O_RDWR|os.O_CREAT);"
            "fcntl.flock(fd,fcntl.LOCK_EX);print('held',flush=True);sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        unit = DataUnitFile(path, lock_timeout_s=0.2)
        with pytest.raises(DataUnitLockedError, match="held by another writer"):
            asyncio.run(unit.set({"x": 1}))
        assert not path.exists()
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
        if holder.stdout is not None:
            holder.stdout.close()
    asyncio.run(DataUnitFile(path, lock_timeout_s=1).set({"x": 1}))
    assert json.loads(path.read_text()) == {"x": 1}


def test_concurrent_writers_in_two_processes_never_leave_a_torn_file(
    tmp_path: Path,
) -> None:
    """Two processes writing 200 values each leave a file that is always whole JSON."""
    path = tmp_path / "shared.json"
    script = (
        "import asyncio,sys\n"
        "from app.data import DataUnitFile\n"
        "async def main():\n"
        f"    unit = DataUnitFile({str(path)!r})\n"
        "    for i in range(200):\n"
        "        await unit.set({'writer': sys.argv[1], 'i': i, 'pad': 'x' * 5000})\n"
        "asyncio.run(main())\n"
    )
    writers = [subprocess.Popen([sys.executable, "-c", script, name]) for name in "ab"]
    reader = DataUnitFile(path)
    seen = 0
    while any(writer.poll() is None for writer in writers):
        value = asyncio.run(reader.get())
        if value is not None:
            assert value["writer"] in {"a", "b"}
            seen += 1
    assert all(writer.wait(timeout=60) == 0 for writer in writers)
    final = asyncio.run(reader.get())
    assert final["i"] == 199
    assert seen > 0


def test_file_unit_needs_a_path() -> None:
    """A file unit without a path is a DataUnitConfigError saying where to give one."""
    with pytest.raises(DataUnitConfigError, match="needs a file path"):
        DataUnitFile()
