from fastapi import FastAPI

from runtime import crypto
from runtime.auth import install_auth
from runtime.service import ServiceRuntime, build_app
from schemas.events.referrals import (
    ReferralContactFallback, ReferralCreated, ReferralEscalated, ReferralReminder, ReferralStatusChanged,
)
from services.notify.delivery.registry import Senders
from services.notify.models import metadata
from services.notify.notifications.dispatcher import Dispatcher
from services.notify.notifications.handlers import referral_handlers
from services.notify.notifications.receipts import router as receipts_router
from services.notify.notifications.reconcile import Reconciler
from services.notify.notifications.views import router
from services.notify.settings import NotifySettings
from services.notify.templates.repository import TemplateBook
from services.notify.templates.seed import defaults_worker
from services.notify.templates.views import router as templates_router
from services.notify.webhooks.service import secret_source
from services.notify.webhooks.views import router as webhooks_router


def create_app(settings: NotifySettings | None = None) -> FastAPI:
    settings = settings or NotifySettings()
    crypto.configure(settings)
    runtime = ServiceRuntime("notify", metadata, settings)
    senders = Senders.from_settings(settings, secret_source(runtime.sessions))
    handle = referral_handlers(senders, TemplateBook(), allow_fictitious=settings.notify_fictitious_numbers)
    runtime.add_consumer("notify.referrals", {event: handle for event in (
        ReferralCreated, ReferralReminder, ReferralEscalated, ReferralStatusChanged, ReferralContactFallback)})
    runtime.add_worker("template-defaults", defaults_worker(runtime.sessions), everywhere=True)
    runtime.add_worker("dispatcher", Dispatcher(runtime, settings, senders).run)
    runtime.add_worker("reconcile", Reconciler(runtime, settings, senders).run)
    app = build_app(
        runtime, [router, templates_router, webhooks_router, receipts_router], "Notify",
        "Sends SMS, email and webhook alerts to agencies, tracks each one's delivery, and never sends one twice. "
        "Staff and admins need a bearer JWT; provider callbacks are signed by the provider.",
    )
    install_auth(app)
    app.state.senders = senders
    return app
