from fastapi import FastAPI

from runtime.auth import install_auth
from runtime.service import ServiceRuntime, build_app
from services.reporting.models import metadata
from services.reporting.projections import HANDLERS, topics
from services.reporting.projections.checkpoint import ProjectionCheckpoint
from services.reporting.settings import ReportingSettings
from services.reporting.stats.lag import EndOffsets
from services.reporting.stats.views import router as stats_router

CONSUMER = "reporting.projections"


def create_app(settings: ReportingSettings | None = None) -> FastAPI:
    settings = settings or ReportingSettings()
    runtime = ServiceRuntime("reporting", metadata, settings)
    runtime.add_consumer(CONSUMER, HANDLERS, checkpoint=ProjectionCheckpoint(runtime.uow))
    app = build_app(runtime, [stats_router], "Reporting",
                    "Figures analysts publish, built only from the event stream: contacts, cases, potential "
                    "victims, referrals, outcomes and alert delivery. No personal data; small cells suppressed.")
    app.state.settings = settings
    app.state.end_offsets = ends = EndOffsets(settings.kafka, topics(),
                                              settings.reporting_lag_cache_s)

    async def close_lag_client(stop) -> None:
        await stop.wait()
        await ends.close()

    runtime.add_worker("lag-client", close_lag_client, everywhere=True)
    install_auth(app)
    return app
