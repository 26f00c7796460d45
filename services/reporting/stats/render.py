"""Answers as JSON or CSV, each saying how far behind the event stream the figures are; every use of
unsuppressed figures written to the audit log first."""
import csv
import io
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import insert

from runtime.uow import UnitOfWork
from services.reporting.models import audit_log
from services.reporting.stats.lag import Lag, projection_lag
from services.reporting.stats.params import Format, StatsParams


async def audit_unsuppressed(uow: UnitOfWork, request: Request, params: StatsParams) -> None:
    if params.suppress:
        return
    await uow.session.execute(insert(audit_log).values(
        subject=params.principal.subject, action="unsuppressed-read", path=request.url.path[:300],
        query=str(request.url.query)[:2000]))
    await uow.commit()


async def lag_of(uow: UnitOfWork, request: Request) -> Lag:
    return await projection_lag(uow.session, request.app.state.end_offsets)


def _headers(lag: Lag) -> dict[str, str]:
    headers = {"X-Projection-Checked-At": lag.checked_at.isoformat()}
    if lag.events_behind is not None:
        headers["X-Projection-Lag-Events"] = str(lag.events_behind)
    if lag.last_event_at is not None:
        headers["X-Projection-Last-Event-At"] = lag.last_event_at.isoformat()
    if lag.rebuilding:
        headers["X-Projection-Rebuilding"] = "true"
    return headers


def answer(params: StatsParams, body: dict[str, Any], rows: list[dict[str, Any]], lag: Lag,
           filename: str, columns: list[str] | None = None) -> Response:
    """`body` (with `rows` under "rows") as JSON, or the rows alone as CSV with the metadata in headers."""
    headers = _headers(lag)
    if params.format is Format.csv:
        out = io.StringIO()
        columns = columns or list(dict.fromkeys(k for row in rows for k in row))
        writer = csv.DictWriter(out, columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(v) for k, v in row.items()})
        headers["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)
    return JSONResponse({**body, "rows": rows, "lag": lag.model_dump(mode="json")}, headers=headers)


def _csv_value(value: Any) -> Any:
    if value is None:
        return "suppressed"
    if isinstance(value, bool):
        return str(value).lower()
    return value


def described(params: StatsParams, k: int | None, **extra: Any) -> dict[str, Any]:
    """What every answer says about itself."""
    return {"from": params.start.isoformat(), "to": params.end.isoformat(), "group": params.group.value,
            "by": list(params.by), "filters": params.filters,
            "suppression": {"k": k, "applied": k is not None}, **extra}
