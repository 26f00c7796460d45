from fastapi import FastAPI

from runtime.service import ServiceRuntime, build_app
from schemas.events.cases import CaseReported, CaseUpdated
from services.referral.deadlines.scanner import deadline_worker
from services.referral.directory.repository import DirectoryCache
from services.referral.matching.loader import RuleBook
from services.referral.matching.views import router as matching_router
from services.referral.models import metadata
from services.referral.referrals.handlers import Referrer, on_case
from services.referral.referrals.views import router
from services.referral.settings import ReferralSettings


def create_app(settings: ReferralSettings | None = None) -> FastAPI:
    settings = settings or ReferralSettings()
    # A rules file that does not validate stops the start: a referral service without rules refers nobody.
    referrer = Referrer(settings, RuleBook(settings.rules_file), DirectoryCache())
    runtime = ServiceRuntime("referral", metadata, settings)
    handle = on_case(referrer)
    runtime.add_consumer("referral.cases", {CaseReported: handle, CaseUpdated: handle})
    runtime.add_worker("rules-watch", referrer.watch_rules)
    runtime.add_worker("deadlines", deadline_worker(runtime.uow, referrer))
    app = build_app(
        runtime, [router, matching_router], "Referral",
        "Matches each case to the competent agencies by rules kept as data, explains every choice, and tracks "
        "each referral.",
    )
    app.state.referrer = referrer
    return app
