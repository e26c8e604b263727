"""The sync hot path: record ids, canonical JSON, the driver-level page write and the read-ahead."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert

from interlink.model import build_record_id, canonical_json, reference
from interlink.runtime import Runtime
from interlink.store.records import PreparedRecord, get_record, upsert_page
from interlink.store.runs import RunRow
from interlink.store.tables import records
from interlink.sync.engine import SyncEngine
from interlink.sync.requests import request_syncs
from tests.support.memory_source import (
    MemorySource,
    insert_memory_connection,
    lookup_for,
    memory_integration,
)

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def reference_record_id(prefix: str, connection_id: str, entity: str, remote_id: str) -> str:
    material = "\x1f".join((connection_id, entity, remote_id)).encode()
    return f"{prefix}_{base64.b32encode(hashlib.sha256(material).digest()).decode().lower()[:26]}"


@pytest.mark.parametrize("remote_id", ["1", "V00042", "ünïcödé/ключ", "x" * 500, ""])
def test_record_id_matches_full_digest_base32(remote_id: str) -> None:
    expected = reference_record_id("vnd", "con_0193", "vendor", remote_id)
    assert build_record_id("con_0193", "vendor", remote_id) == expected
    assert reference("con_0193", "vendor", remote_id).id == expected
    assert reference("con_0193", "vendor", remote_id).id == expected  # served from the cache


def test_canonical_json_matches_sorted_stdlib_json() -> None:
    value = {
        "b": [1, {"z": None, "a": True}],
        "a": 'ünïcödé "quoted" \\ \n',
        "n": -(2**63),
        "nested": {"y": [], "x": {}},
    }
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert canonical_json(value) == expected


def test_canonical_json_writes_integers_beyond_64_bits() -> None:
    assert canonical_json({"big": 2**70, "small": 1}) == b'{"big":1180591620717411303424,"small":1}'


def test_canonical_json_rejects_unknown_types() -> None:
    with pytest.raises(TypeError, match="object is not JSON serializable"):
        canonical_json({"value": object()})


async def insert_test_connection(runtime: Runtime) -> str:
    return await insert_memory_connection(runtime)


def prepared(
    remote_id: str, *, raw: dict[str, Any] | None, deleted: bool = False, created: str | None = None
) -> PreparedRecord:
    return PreparedRecord(
        id=f"vnd_{remote_id}",
        remote_id=remote_id,
        data='{"name":"Ünïcödé GmbH","lines":[{"quantity":"2.5"}],"empty":null}',
        raw=raw,
        content_hash="0" * 64,
        remote_created_at=created or "2026-01-02T01:04:05.000006Z",
        remote_updated_at=None,
        deleted=deleted,
    )


async def test_page_write_stores_what_core_insert_stores(runtime: Runtime) -> None:
    connection_id = await insert_test_connection(runtime)
    page = [
        prepared("r1", raw={"id": 1, "text": "ä"}),
        prepared("r2", raw=None, deleted=True, created="2026-01-02T01:04:05Z"),
    ]
    async with runtime.db.write() as db:
        counts = await upsert_page(db, connection_id=connection_id, entity="vendor", page=page, now=T0)
        # The same records once more through the SQLAlchemy column types, for comparison.
        for record in page:
            await db.execute(
                insert(records).values(
                    id=f"{record.id}_core",
                    connection_id=connection_id,
                    entity="vendor",
                    remote_id=f"{record.remote_id}_core",
                    data=json.loads(record.data),
                    raw=record.raw,
                    content_hash=record.content_hash,
                    remote_created_at=parsed_time(record.remote_created_at),
                    remote_updated_at=parsed_time(record.remote_updated_at),
                    created_at=T0,
                    modified_at=T0,
                    deleted=record.deleted,
                    deleted_at=T0 if record.deleted else None,
                    change_seq=counts.change_seq,
                )
            )
    assert counts.created == 2

    async with runtime.db.read() as db:
        for record in page:
            stored = await get_record(db, "vendor", record.id)
            core = await get_record(db, "vendor", f"{record.id}_core")
            assert stored is not None
            assert core is not None
            assert stored.data == json.loads(record.data)
            assert stored.raw == record.raw
            assert stored.remote_created_at == parsed_time(record.remote_created_at)
            assert stored.remote_created_at is not None
            assert stored.remote_created_at.tzinfo == UTC
            assert stored.remote_updated_at is None
            assert stored.deleted is record.deleted
            assert stored.deleted_at == (T0 if record.deleted else None)
            assert stored.change_seq == core.change_seq
            for name in (
                "data",
                "raw",
                "remote_created_at",
                "created_at",
                "modified_at",
                "deleted",
                "deleted_at",
            ):
                assert getattr(stored, name) == getattr(core, name), name

        # Compare the column values as the database stores them, below the SQLAlchemy types.
        columns = "data, raw, remote_created_at, created_at, modified_at, deleted, deleted_at"
        raw_rows = {
            row[0]: row[1:] for row in (await db.exec_driver_sql(f"SELECT id, {columns} FROM records")).all()
        }
    for record in page:
        driver_row = raw_rows[record.id]
        core_row = raw_rows[f"{record.id}_core"]
        assert [decoded(value) for value in driver_row[:2]] == [decoded(value) for value in core_row[:2]]
        assert driver_row[2:] == core_row[2:]


def parsed_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def decoded(value: Any) -> Any:
    # sqlite3 returns JSON columns as text, while asyncpg decodes them with SQLAlchemy's codec.
    return json.loads(value) if isinstance(value, str) else value


async def test_large_page_write_round_trips(runtime: Runtime) -> None:
    # 2,500 records span three of SQLite's multi-row statements, the last one shorter.
    connection_id = await insert_test_connection(runtime)
    first = [prepared(f"r{number:04d}", raw={"n": number}) for number in range(2500)]
    second = [
        record._replace(data=json.dumps({"name": f"Vendor {number}"}), content_hash=f"{number:064d}")
        if number % 2
        else record
        for number, record in enumerate(first)
    ]
    async with runtime.db.write() as db:
        created = await upsert_page(db, connection_id=connection_id, entity="vendor", page=first, now=T0)
    later = T0 + timedelta(hours=1)
    async with runtime.db.write() as db:
        changed = await upsert_page(db, connection_id=connection_id, entity="vendor", page=second, now=later)

    assert created.created == 2500
    assert changed.updated == 1250
    assert changed.unchanged == 1250
    async with runtime.db.read() as db:
        for number in (0, 999, 1000, 1001, 2499):
            stored = await get_record(db, "vendor", f"vnd_r{number:04d}")
            assert stored is not None
            assert stored.raw == {"n": number}
            assert stored.data == json.loads(second[number].data)
            assert stored.created_at == T0
            assert stored.modified_at == (later if number % 2 else T0)
            assert stored.change_seq == (changed.change_seq if number % 2 else created.change_seq)


async def test_engine_reads_at_most_one_page_ahead(runtime: Runtime) -> None:
    connection_id = await insert_test_connection(runtime)
    source = MemorySource()
    for number in range(10):
        source.put(f"v{number:02d}", f"Vendor {number}", T0 - timedelta(days=1, minutes=number))
    engine = SyncEngine(
        runtime.db,
        runtime.credentials,
        clock=lambda: T0,
        integration_lookup=lookup_for(memory_integration(source)),
    )
    (run,) = await request_syncs(
        runtime.db,
        None,
        connection_id=connection_id,
        entities=["vendor"],
        mode="incremental",
        trigger="manual",
        now=T0,
    )
    served_at_commit: list[int] = []

    def note_pages(current: RunRow, counts: object) -> None:
        served_at_commit.append(source.pages_served)

    finished = await engine.execute_run(run.id, progress=note_pages)

    assert finished is not None
    assert finished.status == "succeeded"
    assert finished.counts["created"] == 10
    assert len(served_at_commit) == 4  # 3 + 3 + 3 + 1 records
    for committed, served in enumerate(served_at_commit, start=1):
        assert committed <= served <= committed + 1
