from fastapi import FastAPI

from runtime.service import ServiceRuntime, build_app
from schemas.events.cases import CaseReported
from services.referral.models import metadata
from services.referral.referrals.handlers import on_case_reported
from services.referral.referrals.views import router
from services.referral.settings import ReferralSettings


def create_app(settings: ReferralSettings | None = None) -> FastAPI:
    settings = settings or ReferralSettings()
    runtime = ServiceRuntime("referral", metadata, settings)
    runtime.add_consumer("referral.cases", {CaseReported: on_case_reported(settings)})
    return build_app(
        runtime, [router], "Referral", "Matches each case to the competent agency and tracks the referral."
    )
