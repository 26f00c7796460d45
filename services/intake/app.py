from fastapi import FastAPI

from runtime.crypto import configure_keys
from runtime.service import ServiceRuntime, build_app
from services.intake.cases.views import router as cases_router
from services.intake.models import metadata
from services.intake.settings import IntakeSettings


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    configure_keys(settings.pii_encryption_keys.get_secret_value())
    runtime = ServiceRuntime("intake", metadata, settings)
    return build_app(
        runtime, [cases_router], "Intake", "Records every contact with the 111 hotline and turns reports into cases."
    )
