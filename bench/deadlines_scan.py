"""One deadline scanner process for `python -m bench deadlines`: the service's own code (fire_due, in a
UnitOfWork per batch, as `deadline_worker` calls it), under a clock the bench sets, with no service
around it. It stands for one referral replica's deadline worker, so its CPU is counted apart from the
bench's and two of them scan the same rows from two OS processes.

    python -m bench.deadlines_scan <database_url>

It loads the directory, runs one scan with nothing due (which captures the scanner's SELECT), prints
one JSON line {"ready": ..., "sql": ...}, then reads commands from stdin, one JSON object a line, and
answers each with one JSON line:

    {"cmd": "drain", "now": iso, "escalate_minutes": m, "limit": 100}
        fire_due in a loop until a batch fires nothing, as deadline_worker does (a failed batch is
        retried, as the worker retries at its next tick); the timers it sets to escalate are due m
        minutes after `now`. Answer: steps of each kind, each batch's milliseconds, errors, wall start
        and end (time.time(), comparable across processes), CPU seconds.
    {"cmd": "empty", "now": iso, "count": n}
        n scans at `now`, each timed (ms), back to back.
    {"cmd": "exit"}
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime

from sqlalchemy import event, text

from bench.common import run
from runtime.db import create_engine, notify_channel, session_factory
from runtime.logging import configure_logging, get_logger
from runtime.uow import UnitOfWork
from services.referral.deadlines.scanner import fire_due
from services.referral.directory.repository import DirectoryCache
from services.referral.feeds.projection import feed_projection
from services.referral.matching.loader import RuleBook
from services.referral.models import outbox
from services.referral.referrals.handlers import Referrer
from services.referral.settings import ReferralSettings

SOURCE = "/hotline111/referral"  # what the service's ServiceRuntime.uow stamps on its events
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # a clock at which nothing is ever due
MAX_ERRORS = 50
log = get_logger("services.referral.deadlines.scanner")


def settings(database_url: str, escalate_minutes: int, link_secret: str) -> ReferralSettings:
    """Referral's settings, but every urgency escalates `escalate_minutes` after its reminder: the bench
    chooses when escalations fall due (the work of a step does not depend on the delay)."""
    return ReferralSettings(database_url=database_url, kafka_bootstrap_servers="127.0.0.1:9",
                            referral_link_secret=link_secret, escalate_minutes_emergency=escalate_minutes,
                            escalate_minutes_high=escalate_minutes, escalate_minutes_normal=escalate_minutes)


def cpu_s() -> float:
    t = os.times()
    return t.user + t.system


WARM_LIMIT = 3  # the batch size of the warm-up scan, told apart from the other parameters by it


class Scanner:
    def __init__(self, database_url: str, link_secret: str):
        self.url, self.link_secret = database_url, link_secret
        self.engine = create_engine(database_url)  # the service's pool (10); one connection is used
        self.sessions = session_factory(self.engine)
        self.rules, self.directory = RuleBook(), DirectoryCache()  # kept across referrers: loaded once

    def referrer(self, escalate_minutes: int) -> Referrer:
        return Referrer(settings(self.url, escalate_minutes, self.link_secret), self.rules, self.directory)

    def uow(self) -> UnitOfWork:
        # As in the service: the agency feeds are written in the scan's own transaction.
        return UnitOfWork(self.sessions, outbox, SOURCE, notify_channel("referral"),
                          [feed_projection(self.directory)])

    async def warm(self) -> tuple[str, list]:
        """The directory in memory, a pooled connection, and the scanner's SELECT as sent, with its
        parameters marked: "time" (the scan's now), "limit" (the batch size) or a literal value."""
        async with self.uow() as uow:
            await self.directory.current(uow.session)
        captured: list[tuple[str, list]] = []

        def grab(_conn, _cursor, statement, params, _context, _many) -> None:
            if "SKIP LOCKED" in statement:
                captured.append((statement, list(params)))

        event.listen(self.engine.sync_engine, "before_cursor_execute", grab)
        try:
            await self.empty(EPOCH, WARM_LIMIT)
        finally:
            event.remove(self.engine.sync_engine, "before_cursor_execute", grab)
        if not captured:
            return "", []
        sql, params = captured[-1]
        return sql, [{"kind": "time"} if isinstance(p, datetime) else {"kind": "limit"} if p == WARM_LIMIT
                     else {"kind": "value", "value": p} for p in params]

    async def flush_stats(self) -> None:
        """Have this process's PostgreSQL backend publish its counters now, not up to 10 s later when
        idle (PostgreSQL 15+): the bench reads them right after each command."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT pg_stat_force_next_flush()"))
        except Exception:  # noqa: BLE001 - older servers: the bench waits instead
            pass

    async def drain(self, now: datetime, escalate_minutes: int, limit: int) -> dict:
        referrer = self.referrer(escalate_minutes)
        batches, errors, reminders, escalations = [], [], 0, 0
        clock = time.perf_counter
        cpu0, started = cpu_s(), time.time()
        ended = started
        while True:
            s = clock()
            try:
                async with self.uow() as uow:
                    fired = await fire_due(uow, referrer, now, limit)
            except Exception as err:  # noqa: BLE001 - deadline_worker logs it and scans again
                errors.append(f"{type(err).__name__}: {str(err)[:200]}")
                if len(errors) >= MAX_ERRORS:
                    break
                continue
            if not fired.total:
                break
            log.info("deadlines_fired", reminders=fired.reminders, escalations=fired.escalations)  # as the worker
            ended = time.time()
            batches.append(round((clock() - s) * 1000, 3))
            reminders += fired.reminders
            escalations += fired.escalations
        return {"reminders": reminders, "escalations": escalations, "batch_ms": batches, "errors": errors,
                "started": started, "ended": ended, "cpu_s": round(cpu_s() - cpu0, 3)}

    async def empty(self, now: datetime, count: int) -> dict:
        referrer, times, fired = self.referrer(60), [], 0
        cpu0 = cpu_s()
        for _ in range(count):
            s = time.perf_counter()
            async with self.uow() as uow:
                fired += (await fire_due(uow, referrer, now)).total
            times.append(round((time.perf_counter() - s) * 1000, 4))
        return {"ms": times, "fired": fired, "cpu_s": round(cpu_s() - cpu0, 3)}


async def main(database_url: str, answer) -> None:
    link_secret = os.environ.get("REFERRAL_LINK_SECRET") or "bench-deadlines-link-secret-0123456789abcdef"
    scanner = Scanner(database_url, link_secret)
    try:
        sql, params = await scanner.warm()
        answer({"ready": True, "pid": os.getpid(), "sql": sql, "params": params})
        while line := await asyncio.to_thread(sys.stdin.readline):
            cmd = json.loads(line)
            if cmd["cmd"] == "exit":
                break
            now = datetime.fromisoformat(cmd["now"])
            if cmd["cmd"] == "drain":
                out = await scanner.drain(now, cmd["escalate_minutes"], cmd.get("limit", 100))
            elif cmd["cmd"] == "empty":
                out = await scanner.empty(now, cmd["count"])
            else:
                out = {"error": f"unknown command {cmd['cmd']!r}"}
            await scanner.flush_stats()
            answer(out)
    finally:
        await scanner.engine.dispose()


def _protocol_channel():
    """Answers go to the original stdout; everything else written to fd 1 (the service's JSON logs,
    configured as in the service, at INFO) goes to stderr, which the bench sends to a log file."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def answer(obj: dict) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    return answer


if __name__ == "__main__":
    reply = _protocol_channel()
    configure_logging("referral", "INFO")
    run(main(sys.argv[1], reply))
