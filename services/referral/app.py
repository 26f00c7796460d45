from fastapi import FastAPI

from runtime.auth import install_auth
from runtime.service import ServiceRuntime, build_app
from schemas.events.cases import CaseReported, CaseUpdated
from schemas.events.notifications import NotificationStatusChanged
from services.referral.deadlines.scanner import deadline_worker
from services.referral.directory.repository import DirectoryCache
from services.referral.directory.views import router as directory_router
from services.referral.feeds.projection import feed_projection
from services.referral.matching.loader import RuleBook
from services.referral.matching.views import router as matching_router
from services.referral.models import metadata
from services.referral.referrals.ack_views import router as ack_router
from services.referral.referrals.agency_views import router as agency_router
from services.referral.referrals.delivery import on_notification
from services.referral.referrals.handlers import Referrer, on_case
from services.referral.referrals.views import router
from services.referral.settings import ReferralSettings


def create_app(settings: ReferralSettings | None = None) -> FastAPI:
    settings = settings or ReferralSettings()
    if settings.referral_link_secret is None:
        raise SystemExit("REFERRAL_LINK_SECRET is required: it signs the acknowledge links in alerts (at least 32 "
                         "bytes; `python -c 'import secrets; print(secrets.token_urlsafe(32))'`). `make run` keeps "
                         "one in .data/referral-link.secret.")
    # A rules file that does not validate stops the start: a referral service without rules refers nobody.
    referrer = Referrer(settings, RuleBook(settings.rules_file), DirectoryCache())
    runtime = ServiceRuntime("referral", metadata, settings)
    runtime.before_commit.append(feed_projection(referrer.directory))
    handle = on_case(referrer)
    runtime.add_consumer("referral.cases", {CaseReported: handle, CaseUpdated: handle})
    # A group of its own: delivery reports never wait behind matching, nor matching behind them.
    runtime.add_consumer("referral.notifications", {NotificationStatusChanged: on_notification(referrer)})
    runtime.add_worker("rules-watch", referrer.watch_rules, everywhere=True)
    runtime.add_worker("deadlines", deadline_worker(runtime.uow, referrer))
    app = build_app(
        runtime, [router, matching_router, agency_router, ack_router, directory_router], "Referral",
        "Matches each case to the competent agencies by rules kept as data, explains every choice, and tracks "
        "each referral through its lifecycle. Hotline staff, agencies and directory administrators need a bearer "
        "JWT; an acknowledge link is its own credential.",
    )
    install_auth(app)
    app.state.referrer = referrer
    return app
