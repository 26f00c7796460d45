"""Controlled vocabularies, from Law 53/2024/QH15 and IOM's CTDC data standard (../shared/domain.md).

Kept as data: renaming a value is a breaking change; adding one is not.
"""
from enum import StrEnum


class ContactType(StrEnum):
    information_report = "information_report"  # a tip about suspected trafficking
    consultation = "consultation"  # legal advice, victims' rights, services, prevention
    emergency = "emergency"  # someone is in danger now
    follow_up = "follow_up"  # about an existing case
    non_case = "non_case"


class NonCaseReason(StrEnum):
    silent = "silent"
    prank = "prank"
    wrong_number = "wrong_number"
    abusive = "abusive"
    other = "other"


class CallerRole(StrEnum):
    victim = "victim"
    relative_or_friend = "relative_or_friend"
    citizen_or_witness = "citizen_or_witness"
    agency = "agency"
    anonymous = "anonymous"


class Sex(StrEnum):
    female = "female"
    male = "male"
    other = "other"
    unknown = "unknown"


class AgeBand(StrEnum):
    """CTDC's published age bands."""

    a0_8 = "0-8"
    a9_17 = "9-17"
    a18_20 = "18-20"
    a21_23 = "21-23"
    a24_26 = "24-26"
    a27_29 = "27-29"
    a30_38 = "30-38"
    a39_47 = "39-47"
    a48_plus = "48+"
    unknown = "unknown"


_BAND_FLOORS = [(48, AgeBand.a48_plus), (39, AgeBand.a39_47), (30, AgeBand.a30_38), (27, AgeBand.a27_29),
                (24, AgeBand.a24_26), (21, AgeBand.a21_23), (18, AgeBand.a18_20), (9, AgeBand.a9_17),
                (0, AgeBand.a0_8)]
CHILD_BANDS = frozenset({AgeBand.a0_8, AgeBand.a9_17})


def age_band_for(age: int) -> AgeBand:
    return next(band for floor, band in _BAND_FLOORS if age >= floor)


class ConsultationTopic(StrEnum):
    legal_advice = "legal_advice"
    victims_rights = "victims_rights"
    support_services = "support_services"
    prevention = "prevention"
    safe_migration = "safe_migration"
    other = "other"


class ConsultationGiven(StrEnum):
    information = "information"
    referral_to_service = "referral_to_service"


class LawPurpose(StrEnum):
    """Exploitation purposes of Law 53/2024/QH15."""

    sexual_exploitation = "sexual_exploitation"
    forced_labour = "forced_labour"
    organ_removal = "organ_removal"
    other_inhumane_purposes = "other_inhumane_purposes"
    material_benefit = "material_benefit"


class CtdcExploitation(StrEnum):
    """CTDC's type of exploitation."""

    forced_labour = "forced_labour"
    sexual_exploitation = "sexual_exploitation"
    forced_marriage = "forced_marriage"
    forced_military = "forced_military"
    organ_removal = "organ_removal"
    slavery_and_practices = "slavery_and_practices"
    other = "other"


class Exploitation(StrEnum):
    """What an operator records: the law's purposes, refined where CTDC distinguishes more."""

    sexual_exploitation = "sexual_exploitation"
    forced_labour = "forced_labour"
    organ_removal = "organ_removal"
    forced_marriage = "forced_marriage"
    forced_military = "forced_military"
    slavery_and_practices = "slavery_and_practices"
    foetus_trading = "foetus_trading"  # prohibited by the law alongside trafficking
    material_benefit = "material_benefit"
    other_inhumane_purposes = "other_inhumane_purposes"


# Each recorded value, as the law's purpose and as CTDC's type.
EXPLOITATION_MAP: dict[Exploitation, tuple[LawPurpose, CtdcExploitation]] = {
    Exploitation.sexual_exploitation: (LawPurpose.sexual_exploitation, CtdcExploitation.sexual_exploitation),
    Exploitation.forced_labour: (LawPurpose.forced_labour, CtdcExploitation.forced_labour),
    Exploitation.organ_removal: (LawPurpose.organ_removal, CtdcExploitation.organ_removal),
    Exploitation.forced_marriage: (LawPurpose.other_inhumane_purposes, CtdcExploitation.forced_marriage),
    Exploitation.forced_military: (LawPurpose.other_inhumane_purposes, CtdcExploitation.forced_military),
    Exploitation.slavery_and_practices: (LawPurpose.other_inhumane_purposes, CtdcExploitation.slavery_and_practices),
    Exploitation.foetus_trading: (LawPurpose.other_inhumane_purposes, CtdcExploitation.other),
    Exploitation.material_benefit: (LawPurpose.material_benefit, CtdcExploitation.other),
    Exploitation.other_inhumane_purposes: (LawPurpose.other_inhumane_purposes, CtdcExploitation.other),
}


class MeansOfControl(StrEnum):
    """CTDC's 17 means-of-control flags."""

    debt_bondage = "debt_bondage"
    takes_earnings = "takes_earnings"
    restricts_financial_access = "restricts_financial_access"
    threats = "threats"
    psychological_abuse = "psychological_abuse"
    physical_abuse = "physical_abuse"
    sexual_abuse = "sexual_abuse"
    false_promises = "false_promises"
    psychoactive_substances = "psychoactive_substances"
    restricts_movement = "restricts_movement"
    restricts_medical_care = "restricts_medical_care"
    excessive_working_hours = "excessive_working_hours"
    uses_children = "uses_children"
    threat_of_law_enforcement = "threat_of_law_enforcement"
    withholds_necessities = "withholds_necessities"
    withholds_documents = "withholds_documents"
    other = "other"


VIOLENT_MEANS = frozenset({MeansOfControl.physical_abuse, MeansOfControl.sexual_abuse})


class RecruiterRelationship(StrEnum):
    """CTDC's recruiter relationship."""

    intimate_partner = "intimate_partner"
    friend = "friend"
    family = "family"
    other = "other"
    unknown = "unknown"


class TraffickerRole(StrEnum):
    recruiter = "recruiter"
    transporter = "transporter"
    broker = "broker"
    exploiter = "exploiter"
    unknown = "unknown"


class RecruitmentChannel(StrEnum):
    facebook = "facebook"
    zalo = "zalo"
    tiktok = "tiktok"
    telegram = "telegram"
    other_social_media = "other_social_media"
    job_advertisement = "job_advertisement"
    marriage_broker = "marriage_broker"
    in_person = "in_person"
    family_or_friend = "family_or_friend"
    other = "other"
    unknown = "unknown"


class Need(StrEnum):
    """Support under Law 53/2024 and what victims are connected to."""

    medical = "medical"
    psychological = "psychological"
    shelter = "shelter"
    legal_aid = "legal_aid"
    repatriation = "repatriation"
    documents = "documents"
    travel_and_meals = "travel_and_meals"
    vocational_training = "vocational_training"
    financial_support = "financial_support"
    other = "other"


class CaseStatus(StrEnum):
    open = "open"
    referred = "referred"
    in_progress = "in_progress"
    closed = "closed"


class CaseOutcome(StrEnum):
    rescued = "rescued"
    assisted = "assisted"
    returned = "returned"
    not_substantiated = "not_substantiated"
    duplicate = "duplicate"
    transferred_abroad = "transferred_abroad"
