from fastapi import FastAPI

from runtime.service import ServiceRuntime, build_app
from schemas.events.referrals import ReferralContactFallback, ReferralCreated
from services.notify.models import metadata
from services.notify.notifications.dispatcher import Dispatcher
from services.notify.notifications.handlers import on_contact_fallback, on_referral_created
from services.notify.notifications.views import router
from services.notify.settings import NotifySettings


def create_app(settings: NotifySettings | None = None) -> FastAPI:
    settings = settings or NotifySettings()
    runtime = ServiceRuntime("notify", metadata, settings)
    runtime.add_consumer("notify.referrals", {ReferralCreated: on_referral_created,
                                              ReferralContactFallback: on_contact_fallback})
    runtime.add_worker("dispatcher", Dispatcher(runtime, settings).run)
    return build_app(runtime, [router], "Notify", "Sends alerts to agencies and tracks their delivery.")
