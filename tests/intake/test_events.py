"""What intake emits validates against the committed JSON Schemas and carries no personal data."""
import json
from pathlib import Path

from jsonschema import Draft202012Validator

from tests.intake.test_cases import FULL_CASE, create, if_match, settled
from tests.intake.test_contacts import call
from tests.support import eventually, read_topic

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "jsonschema"


def validator(ce_type: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMAS / f"{ce_type}.json").read_text()))


async def records_about(stack, topic: str, key: str, count: int):
    async def found():
        records = await read_topic(stack.bootstrap, topic, 1)
        mine = [r for r in records if r.key and r.key.decode() == key]
        return mine if len(mine) >= count else None

    return await eventually(found, 30, interval=0.5)


async def test_case_and_contact_events_match_their_schemas(stack, operator):
    contact = (await operator.post("/contacts", json=call(contact_type="information_report",
                                                          caller_name="Hà G", caller_phone="0911222333"))).json()
    case = (await create(operator, {**FULL_CASE, "contact_id": contact["id"]})).json()
    v = (await settled(operator, case))["version"]  # referral referred it: status-changed
    await operator.patch(f"/cases/{case['id']}", json={"at_sea": True}, headers=if_match(v))
    await operator.post(f"/cases/{case['id']}/status", json={"status": "in_progress"}, headers=if_match(v + 1))
    await operator.post(f"/cases/{case['id']}/notes", json={"text": "spoke to the bus company"})
    records = await records_about(stack, "intake.cases.v1", case["id"], 5)
    records += await records_about(stack, "intake.contacts.v1", case["id"], 1)
    types = []
    for r in records:
        ce_type = dict(r.headers)["ce_type"].decode()
        types.append(ce_type)
        errors = list(validator(ce_type).iter_errors(json.loads(r.value)))
        assert not errors, (ce_type, [e.message for e in errors])
        for secret in (b"L\xc3\xb2 Th", b"Tuan", b"bus", b"0911222333", "Hà G".encode(), b"company"):
            assert secret not in r.value
    assert sorted(types) == sorted(["vn.hotline111.case.reported.v1", "vn.hotline111.case.updated.v1",
                                    "vn.hotline111.case.status-changed.v1", "vn.hotline111.case.status-changed.v1",
                                    "vn.hotline111.case.note-added.v1",
                                    "vn.hotline111.contact.attached.v1"])
    reported_record = next(r for r in records if b"reported" in dict(r.headers)["ce_type"])
    reported = json.loads(reported_record.value)
    # The number is drawn inside the statement that writes the case: the event carries the same one.
    assert reported["case_number"] == case["case_number"] == dict(reported_record.headers)["ce_subject"].decode()
    assert reported["child_involved"] and reported["moving_across_border"] and len(reported["victims"]) == 2
