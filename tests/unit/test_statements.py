"""Hand-written hot-path SQL: `:name` placeholders become asyncpg's $n, casts stay, and rows travel
as JSON in the form PostgreSQL's record input reads, encrypted where the column says so."""
import json
import uuid
from datetime import UTC, datetime
from enum import StrEnum

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Column, LargeBinary, MetaData, String, Table
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from runtime import crypto
from runtime.statements import Statement, record, records_json

NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True)


def test_names_are_numbered_once_in_order_and_casts_survive():
    s = Statement("SELECT :b::text, :a::jsonb, :b, x::int FROM t WHERE y = :a AND z = 'a::b'")
    assert s.sql == "SELECT $1::text, $2::jsonb, $1, x::int FROM t WHERE y = $2 AND z = 'a::b'"
    assert s.names == ("b", "a") and s.args({"a": 1, "b": 2}) == [2, 1]


def test_a_missing_or_unknown_value_is_refused():
    s = Statement("SELECT :a")
    with pytest.raises(KeyError, match="no value"):
        s.args({})
    with pytest.raises(KeyError, match="not in the statement"):
        s.args({"a": 1, "typo": 2})


@given(st.lists(NAMES, min_size=1, max_size=8))
def test_every_name_gets_the_number_of_its_first_appearance(names):
    s = Statement(", ".join(f":{n}::text" for n in names))
    distinct = list(dict.fromkeys(names))
    assert s.names == tuple(distinct)
    assert s.sql == ", ".join(f"${distinct.index(n) + 1}::text" for n in names)


class Colour(StrEnum):
    red = "red"


TABLE = Table("t", MetaData(), Column("id", UUID(as_uuid=True)), Column("secret", crypto.EncryptedText("t.secret")),
              Column("digest", LargeBinary), Column("tags", ARRAY(String)), Column("at", String))


def test_a_record_seals_encrypted_columns_and_writes_bytes_as_bytea_text():
    crypto.configure_keys(crypto.new_key("k1"))
    row_id, at = uuid.uuid4(), datetime(2026, 11, 23, tzinfo=UTC)
    row = record(TABLE, {"id": row_id, "secret": "Lò Thị D", "digest": b"\x00\xff", "tags": [Colour.red],
                         "at": at})
    assert row["id"] == str(row_id) and row["digest"] == "\\x00ff" and row["tags"] == ["red"]
    assert row["at"] == "2026-11-23T00:00:00+00:00"
    sealed = bytes.fromhex(row["secret"].removeprefix("\\x"))
    assert "Lò" not in row["secret"] and TABLE.c.secret.type.process_result_value(sealed, None) == "Lò Thị D"
    assert json.loads(records_json(TABLE, [{"secret": None}])) == [{"secret": None}]


def test_a_record_refuses_a_column_the_table_does_not_have():
    with pytest.raises(KeyError):
        record(TABLE, {"colour": "red"})
