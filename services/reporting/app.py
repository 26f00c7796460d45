from fastapi import FastAPI

from runtime.service import ServiceRuntime, build_app
from schemas.events.cases import CaseReported
from schemas.events.contacts import ContactRecorded
from schemas.events.referrals import ReferralCreated
from services.reporting.models import metadata
from services.reporting.reports.handlers import on_case_reported, on_contact_recorded, on_referral_created
from services.reporting.reports.views import router
from services.reporting.settings import ReportingSettings


def create_app(settings: ReportingSettings | None = None) -> FastAPI:
    settings = settings or ReportingSettings()
    runtime = ServiceRuntime("reporting", metadata, settings)
    runtime.add_consumer(
        "reporting.aggregates",
        {CaseReported: on_case_reported, ReferralCreated: on_referral_created, ContactRecorded: on_contact_recorded},
    )
    return build_app(runtime, [router], "Reporting", "Aggregates that analysts query. No personal data.")
