"""The ceiling for one intake process: FastAPI + one asyncpg INSERT, nothing else.

Served by `uvicorn bench.minimal_app:app --workers 1` with BENCH_DSN set. Same server stack as the
services (uvicorn defaults, pydantic body, 201 JSON answer), but no ORM, outbox, tracing or logging:
the gap to intake is what those cost.
"""
import os
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI
from pydantic import BaseModel

TABLE = "bench.minimal_insert"
pool: asyncpg.Pool | None = None


class Report(BaseModel):
    province_code: str
    channel: str = "phone"


@asynccontextmanager
async def lifespan(app: FastAPI):
    global pool
    pool = await asyncpg.create_pool(os.environ["BENCH_DSN"], min_size=10, max_size=10)  # = services' pool
    try:
        yield
    finally:
        await pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


@app.post("/noop", status_code=201)
async def noop(report: Report) -> dict:
    """No database: what the load client and uvicorn manage by themselves on this machine."""
    return {"id": 0}


@app.post("/reports", status_code=201)
async def create(report: Report) -> dict:
    row_id = await pool.fetchval(
        f"INSERT INTO {TABLE} (province_code, channel) VALUES ($1, $2) RETURNING id",
        report.province_code, report.channel,
    )
    return {"id": row_id}
