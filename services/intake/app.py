from fastapi import FastAPI

from runtime import crypto
from runtime.auth import install_auth
from runtime.service import ServiceRuntime, build_app
from schemas.events.referrals import ReferralCreated, ReferralOutcomeRecorded, ReferralStatusChanged
from services.intake.audit_views import router as audit_router
from services.intake.cases.follow_referrals import (
    on_referral_created, on_referral_outcome_recorded, on_referral_status_changed,
)
from services.intake.cases.views import router as cases_router
from services.intake.contacts.views import router as contacts_router
from services.intake.models import metadata
from services.intake.supervision_views import router as supervision_router
from services.intake.settings import IntakeSettings


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    crypto.configure(settings)
    runtime = ServiceRuntime("intake", metadata, settings)
    runtime.add_consumer("intake.referrals", {
        ReferralCreated: on_referral_created,
        ReferralStatusChanged: on_referral_status_changed,
        ReferralOutcomeRecorded: on_referral_outcome_recorded,
    })
    app = build_app(
        runtime, [contacts_router, cases_router, supervision_router, audit_router], "Intake",
        "Records every contact with the 111 hotline and turns reports into cases. "
        "Bearer JWT required; personal data is encrypted at rest and every read of it is audited.",
    )
    install_auth(app)
    return app
