"""The life of one service process: engine, relay, consumers and workers around a FastAPI app."""
import asyncio
import gc
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import MetaData, text

from runtime.consumer import Checkpoint, EventConsumer, Handler
from runtime.db import create_engine, notify_channel, session_factory
from runtime.kafka import BrokerProbe
from runtime.logging import configure_logging, get_logger
from runtime.metrics import HTTP_LATENCY
from runtime.inputs import reject_unstorable_text
from runtime.problems import document_problems, install_problem_handlers
from runtime.relay import OutboxRelay
from runtime.settings import ServiceSettings
from runtime.tracing import configure_tracing, current_trace_id, shutdown_tracing
from runtime.uow import BeforeCommit, UnitOfWork
from schemas import event_spec_for_model

log = get_logger(__name__)
Worker = Callable[[asyncio.Event], Awaitable[None]]


class ServiceRuntime:
    """Owns what a service runs besides its routes; services add consumers and workers to it."""

    def __init__(self, name: str, metadata: MetaData, settings: ServiceSettings):
        self.name = name
        self.settings = settings
        self.schema = metadata.schema
        # A service has an outbox if it emits events, an inbox if it consumes them (see its models).
        self.outbox = metadata.tables.get(f"{self.schema}.outbox")
        self.inbox = metadata.tables.get(f"{self.schema}.inbox")
        self.engine = create_engine(settings.database_url, settings.db_pool_size)
        self.sessions = session_factory(self.engine)
        self.relay = OutboxRelay(name, self.schema, settings) if self.outbox is not None else None
        self.consumers: list[EventConsumer] = []
        self._workers: list[tuple[str, Worker, bool]] = []
        self.before_commit: list[BeforeCommit] = []  # runs in every unit of work's commit (runtime.uow)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._probe = BrokerProbe(settings.kafka)

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.sessions, self.outbox, f"/hotline111/{self.name}", notify_channel(self.schema),
                          self.before_commit)

    def add_consumer(self, group: str, handlers: dict[type[BaseModel], Handler],
                     checkpoint: Checkpoint | None = None) -> None:
        """Consume, as consumer group `group`, the topics that carry the handled event types."""
        if self.inbox is None:
            raise RuntimeError(f"{self.name} consumes events but its models define no inbox table")
        topics = sorted({event_spec_for_model(model).topic for model in handlers})
        self.consumers.append(EventConsumer(group, topics, handlers, self.uow, self.inbox, self.settings,
                                            checkpoint=checkpoint))

    def add_worker(self, name: str, worker: Worker, everywhere: bool = False) -> None:
        """A background loop of the worker role; `everywhere`: of the api role too (it serves the API)."""
        self._workers.append((name, worker, everywhere))

    async def start(self) -> None:
        self._stop.clear()
        runners: list[tuple[str, Worker]] = []
        if self.relay:  # in every role: one relay per service leads (an advisory lock), wherever it runs
            runners.append(("relay", self.relay.run))
        runners += [(c.name, c.run) for c in self.running_consumers]
        runners += [(name, run) for name, run, everywhere in self._workers if everywhere or self.runs_workers]
        self._tasks = [asyncio.create_task(run(self._stop), name=name) for name, run in runners]

    @property
    def running(self) -> list[str]:
        """The names of the loops this process runs: the relay, consumers by group, workers."""
        return [task.get_name() for task in self._tasks if not task.done()]

    @property
    def runs_workers(self) -> bool:
        """Whether this process consumes events and runs the background loops (SERVICE_ROLE all or worker)."""
        return self.settings.service_role != "api"

    @property
    def serves_api(self) -> bool:
        return self.settings.service_role != "worker"

    @property
    def running_consumers(self) -> list[EventConsumer]:
        return self.consumers if self.runs_workers else []

    async def stop(self) -> None:
        """Graceful: each loop finishes the work in hand and commits, then connections close."""
        self._stop.set()
        if self._tasks:
            done, pending = await asyncio.wait(self._tasks, timeout=self.settings.shutdown_timeout_s)
            for task in pending:
                log.warning("task_cancelled_at_shutdown", task=task.get_name())
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._probe.close()
        await self.engine.dispose()

    async def readiness(self) -> tuple[bool, dict[str, str]]:
        checks: dict[str, str] = {}
        try:
            async with self.engine.connect() as conn:
                await asyncio.wait_for(conn.execute(text("SELECT 1")), 2.0)
            checks["database"] = "ok"
        except Exception:  # noqa: BLE001
            checks["database"] = "unreachable"
        checks["broker"] = "ok" if await self._probe.reachable() else "unreachable"
        for c in self.running_consumers:
            checks[f"consumer:{c.name}"] = "assigned" if c.ready else "joining"
        # The broker is reported but does not fail readiness once started: with the outbox, an API
        # must keep taking work through a broker outage. Database down, or never joined, does fail it.
        ready = checks["database"] == "ok" and all(c.ready for c in self.running_consumers)
        return ready, checks


def build_app(runtime: ServiceRuntime, routers: Iterable[APIRouter], title: str, description: str) -> FastAPI:
    configure_logging(runtime.name, runtime.settings.log_level)
    configure_tracing(runtime.name, runtime.settings.otel_exporter_otlp_endpoint)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await runtime.start()
        # Everything built so far lives as long as the process: keep it out of the collector's
        # full passes, which would otherwise walk it and stall requests for tens of milliseconds.
        gc.collect()
        gc.freeze()
        log.info("service_started", port=runtime.settings.port)
        yield
        log.info("service_stopping")
        await runtime.stop()
        log.info("service_stopped")
        shutdown_tracing()

    # Every route refuses text the database cannot store (runtime/inputs.py) with a 422, not a 500.
    app = FastAPI(title=title, description=description, version="0.1.0", lifespan=lifespan,
                  dependencies=[Depends(reject_unstorable_text)])
    app.state.runtime = runtime
    install_problem_handlers(app)
    document_problems(app)
    app.add_middleware(RequestMetrics)
    app.include_router(_ops_router(runtime))
    for router in routers if runtime.serves_api else ():  # a worker answers probes and scrapes only
        app.include_router(router)
    # One server span per request; a span per ASGI send/receive message only adds cost and noise.
    # /ack/ paths carry a signed link: a span attribute must not keep the credential.
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics,/ack/",
                                       exclude_spans=["receive", "send"])
    return app


class RequestMetrics:
    """Latency histogram, X-Trace-Id and one log line per request. Plain ASGI: Starlette's
    BaseHTTPMiddleware costs a task and a stream per request, a large share of a fast endpoint."""

    QUIET = frozenset({"/healthz", "/readyz", "/metrics"})

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def send_with_trace(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if trace_id := current_trace_id():  # lets support staff find one request's whole trace
                    message["headers"] = [*message.get("headers", []), (b"x-trace-id", trace_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_trace)
        finally:
            route = scope.get("route")
            template = route.path if route is not None else "<unmatched>"
            elapsed = time.perf_counter() - started
            HTTP_LATENCY.labels(scope["method"], template, str(status)).observe(elapsed)
            if template not in self.QUIET:
                log.info("http_request", method=scope["method"], route=template, status=status,
                         ms=round(elapsed * 1000, 2))


_READINESS = {"type": "object", "required": ["status", "checks"], "properties": {
    "status": {"type": "string", "enum": ["ready", "degraded", "not-ready"]},
    "checks": {"type": "object", "additionalProperties": {"type": "string"}}}}


def _ops_router(runtime: ServiceRuntime) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness: the process is serving")
    async def healthz() -> dict:
        return {"status": "ok", "service": runtime.name}

    @router.get("/readyz", summary="Readiness: database reachable and consumers joined; broker reported",
                responses={200: {"description": "Ready, or degraded: the broker is unreachable (the outbox holds "
                                                 "the work)",
                                 "content": {"application/json": {"schema": _READINESS}}},
                           503: {"description": "Not ready: the database is unreachable or a consumer never joined",
                                 "content": {"application/json": {"schema": _READINESS}}}})
    async def readyz():
        ready, checks = await runtime.readiness()
        status = "ready" if ready else "not-ready"
        if ready and "unreachable" in checks.values():
            status = "degraded"
        return JSONResponse({"status": status, "checks": checks}, status_code=200 if ready else 503)

    @router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def runtime_of(request: Request) -> ServiceRuntime:
    return request.app.state.runtime


async def get_uow(request: Request):
    """FastAPI dependency: a unit of work for this request."""
    async with runtime_of(request).uow() as uow:
        yield uow
