"""The facts of a case as events carry them: codes, flags and counts, never names or free text."""
from schemas.events.cases import VictimSummary
from services.intake.cases.schemas import CaseOut


def case_facts(case: CaseOut) -> dict:
    return {
        "case_id": case.id,
        "case_number": case.case_number,
        "province_code": case.province_code,
        "commune_code": case.commune_code,
        "urgency": case.urgency,
        "version": case.version,
        "victims": [VictimSummary(sex=v.sex, age_band=v.age_band, is_child=v.is_child, nationality=v.nationality,
                                  needs=v.needs) for v in case.victims],
        "child_involved": case.child_victim,
        "exploitation": case.exploitation,
        "means_of_control": case.means_of_control,
        "recruitment_channel": case.recruitment_channel,
        "immediate_danger": case.immediate_danger,
        "violence": case.violence,
        "abroad_country": case.abroad_country,
        "moving_across_border": case.moving_across_border,
        "destination_country": case.destination_country,
        "at_sea": case.at_sea,
        "consent_share_identity": case.consent_share_identity,
    }
