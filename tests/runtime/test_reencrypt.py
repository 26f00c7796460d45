"""Key rotation on the real PostgreSQL: after prepending a new key, `reencrypt` moves every stored
value under it in batches, leaves the values unchanged, skips rows others hold, and is idempotent."""
import asyncio
import uuid

import pytest
from sqlalchemy import Column, Integer, LargeBinary, MetaData, Table, insert, select, text, type_coerce
from sqlalchemy.dialects.postgresql import UUID

from runtime import crypto
from runtime.db import create_engine

N = 1234  # not a multiple of the batch size


@pytest.fixture(autouse=True)
def restore_keys():
    saved = crypto._keyring, crypto._hmac_key
    yield
    crypto._keyring, crypto._hmac_key = saved


@pytest.fixture
async def people(stack):
    schema = f"t_{uuid.uuid4().hex[:10]}"
    table = Table(
        "people", MetaData(schema=schema),
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("name", crypto.EncryptedText("tests.people.name")),
        Column("note", crypto.EncryptedText()),
    )
    engine = create_engine(stack.database_url, pool_size=4)
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        await conn.run_sync(table.metadata.create_all)
    yield engine, table
    async with engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    await engine.dispose()


def person(i: int) -> dict:
    return {"id": i, "name": f"Nguyễn Thị Hoa {i:05d}", "note": None if i % 3 == 0 else f"gọi lại 0912{i:06d}"}


async def fill(engine, table) -> list[dict]:
    rows = [person(i) for i in range(N)]
    async with engine.begin() as conn:
        await conn.execute(insert(table), rows)
    return rows


async def raw_rows(engine, table) -> list[tuple]:
    async with engine.connect() as conn:
        return (await conn.execute(select(
            table.c.id, type_coerce(table.c.name, LargeBinary), type_coerce(table.c.note, LargeBinary),
        ).order_by(table.c.id))).all()


async def kids(engine, table) -> set[str]:
    return {crypto.kid_of(blob) for _, *blobs in await raw_rows(engine, table) for blob in blobs if blob is not None}


async def values(engine, table) -> list[dict]:
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(select(table).order_by(table.c.id))]


async def test_rotation_reencrypts_every_row_once(people):
    engine, table = people
    k1, k2 = crypto.new_key("k1"), crypto.new_key("k2")
    crypto.configure_keys(k1)
    rows = await fill(engine, table)
    assert await kids(engine, table) == {"k1"}

    crypto.configure_keys(f"{k2},{k1}")
    stored_values = sum(1 for r in rows for v in (r["name"], r["note"]) if v is not None)
    assert await crypto.reencrypt(engine, [table.c.name, table.c.note], batch_size=100) == stored_values

    assert await kids(engine, table) == {"k2"}
    crypto.configure_keys(k2)  # the old key can go now
    assert await values(engine, table) == rows
    for _, name, note in await raw_rows(engine, table):
        assert b"Nguy" not in name and "Nguyễn".encode() not in name
        assert note is None or b"0912" not in note

    assert await crypto.reencrypt(engine, [table.c.name, table.c.note], batch_size=100) == 0


async def test_context_survives_reencryption(people):
    engine, table = people
    k1, k2 = crypto.new_key("k1"), crypto.new_key("k2")
    crypto.configure_keys(k1)
    await fill(engine, table)
    crypto.configure_keys(f"{k2},{k1}")
    await crypto.reencrypt(engine, crypto.encrypted_columns(table.metadata))
    (_, name, _), *_ = await raw_rows(engine, table)
    assert crypto.decrypt_text(name, "tests.people.name") == person(0)["name"]
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt_text(name)  # still bound to its column


async def test_rows_held_by_another_transaction_are_skipped_not_waited_for(people):
    engine, table = people
    k1, k2 = crypto.new_key("k1"), crypto.new_key("k2")
    crypto.configure_keys(k1)
    await fill(engine, table)
    crypto.configure_keys(f"{k2},{k1}")
    async with engine.connect() as holder:
        await holder.execute(select(table.c.id).where(table.c.id.in_([0, 1])).with_for_update())
        rewritten = await asyncio.wait_for(crypto.reencrypt(engine, [table.c.name], batch_size=500), 30)
        assert rewritten == N - 2
        await holder.rollback()
    assert await crypto.reencrypt(engine, [table.c.name]) == 2
    assert {crypto.kid_of(name) for _, name, _ in await raw_rows(engine, table)} == {"k2"}


async def test_a_value_under_a_missing_key_stops_with_a_clear_error(people):
    engine, table = people
    k0, k1, k2 = crypto.new_key("k0"), crypto.new_key("k1"), crypto.new_key("k2")
    crypto.configure_keys(k0)
    async with engine.begin() as conn:
        await conn.execute(insert(table), [person(0)])
    crypto.configure_keys(f"{k2},{k1}")
    with pytest.raises(crypto.UnknownKeyError, match=r"people.name row \(0\).*'k0'"):
        await crypto.reencrypt(engine, [table.c.name])


async def test_the_command_prints_counts(people, stack, capsys):
    engine, table = people
    k1, k2 = crypto.new_key("k1"), crypto.new_key("k2")
    crypto.configure_keys(k1)
    rows = await fill(engine, table)
    crypto.configure_keys(f"{k2},{k1}")
    await asyncio.to_thread(crypto.reencrypt_command, stack.database_url, [table.c.name, table.c.note])
    out = capsys.readouterr().out
    notes = sum(1 for r in rows if r["note"] is not None)
    assert f"{table.fullname}.name: {N} rows re-encrypted under k2" in out
    assert f"{table.fullname}.note: {notes} rows re-encrypted under k2" in out
    assert f"total: {N + notes} rows" in out


async def test_composite_uuid_keys_and_tiny_batches(stack):
    schema = f"t_{uuid.uuid4().hex[:10]}"
    table = Table(
        "notes", MetaData(schema=schema),
        Column("case_id", UUID(as_uuid=True), primary_key=True),
        Column("n", Integer, primary_key=True, autoincrement=False),
        Column("body", crypto.EncryptedText("tests.notes.body")),
    )
    engine = create_engine(stack.database_url, pool_size=2)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            await conn.run_sync(table.metadata.create_all)
        k1, k2 = crypto.new_key("k1"), crypto.new_key("k2")
        crypto.configure_keys(k1)
        rows = [{"case_id": uuid.uuid4(), "n": n, "body": f"ghi chú {c}-{n}"} for c in range(10) for n in range(5)]
        async with engine.begin() as conn:
            await conn.execute(insert(table), rows)
        crypto.configure_keys(f"{k2},{k1}")
        assert await crypto.reencrypt(engine, [table.c.body], batch_size=7) == 50
        assert await crypto.reencrypt(engine, [table.c.body], batch_size=7) == 0
        crypto.configure_keys(k2)
        async with engine.connect() as conn:
            stored = {(r.case_id, r.n): r.body for r in await conn.execute(select(table))}
        assert stored == {(r["case_id"], r["n"]): r["body"] for r in rows}
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()
