"""Projections: each event folds into reporting's tables, idempotently and in any order across topics."""
from pydantic import BaseModel

from runtime.consumer import Handler
from schemas import event_spec_for_model
from schemas.events.cases import CaseMerged, CaseReported, CaseStatusChanged, CaseUpdated
from schemas.events.contacts import ContactRecorded
from schemas.events.notifications import NotificationStatusChanged
from schemas.events.referrals import (
    ReferralCreated, ReferralEscalated, ReferralOutcomeRecorded, ReferralReminder, ReferralStatusChanged,
)
from services.reporting.projections import cases, contacts, notifications, referrals

HANDLERS: dict[type[BaseModel], Handler] = {
    ContactRecorded: contacts.on_contact_recorded,
    CaseReported: cases.on_case_facts,
    CaseUpdated: cases.on_case_facts,
    CaseStatusChanged: cases.on_case_status_changed,
    CaseMerged: cases.on_case_merged,
    ReferralCreated: referrals.on_referral_created,
    ReferralStatusChanged: referrals.on_referral_status_changed,
    ReferralReminder: referrals.on_referral_reminder,
    ReferralEscalated: referrals.on_referral_escalated,
    ReferralOutcomeRecorded: referrals.on_outcome_recorded,
    NotificationStatusChanged: notifications.on_notification_status_changed,
}


def topics() -> list[str]:
    """The topics the projections are built from."""
    return sorted({event_spec_for_model(model).topic for model in HANDLERS})
