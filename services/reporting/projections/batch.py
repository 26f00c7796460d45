"""Upserts gathered over a consumer batch and written at commit as multi-row statements.

A batch of 200 events would otherwise cost 200 round trips. Rows for one key are applied in the order they
came: the n-th row of each key goes into the n-th statement (rows of one key never share a statement,
which PostgreSQL refuses for ON CONFLICT DO UPDATE). Rows are sorted by key within a statement, so two
replicas lock rows in the same order and cannot deadlock on them. `merge` folds rows of one key together
first where that is plain arithmetic (counts).
"""
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert

from runtime.uow import UnitOfWork

Row = dict[str, Any]


@dataclass(frozen=True)
class Upsert:
    table: Table
    key: tuple[str, ...]
    on_conflict: Callable[[Any], dict]  # excluded → the SET clause
    merge: Callable[[Row, Row], Row] | None = None

    def stage(self, uow: UnitOfWork, row: Row) -> None:
        uow.staged(f"upsert:{self.table.name}:{','.join(sorted(row))}", lambda: _Rows(self)).add(row)


class _Rows:
    def __init__(self, upsert: Upsert):
        self.upsert = upsert
        self.rows: list[Row] = []
        self.merged: dict[tuple, Row] = {}

    def add(self, row: Row) -> None:
        if self.upsert.merge is None:
            self.rows.append(row)
            return
        key = tuple(row[k] for k in self.upsert.key)
        self.merged[key] = self.upsert.merge(self.merged[key], row) if key in self.merged else row

    async def flush(self, uow: UnitOfWork) -> None:
        rounds: list[dict[tuple, Row]] = []
        for row in self.rows or self.merged.values():
            key = tuple(str(row[k]) for k in self.upsert.key)
            free = next((r for r in rounds if key not in r), None)
            if free is None:
                rounds.append(free := {})
            free[key] = row
        for statement_rows in rounds:
            stmt = insert(self.upsert.table).values([statement_rows[k] for k in sorted(statement_rows)])
            await uow.session.execute(stmt.on_conflict_do_update(
                index_elements=[self.upsert.table.c[k] for k in self.upsert.key],
                set_=self.upsert.on_conflict(stmt.excluded)))
