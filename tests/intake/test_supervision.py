"""Possible duplicates, merges and caller blocks: the supervisor's tools."""
from tests.intake.test_cases import create, if_match, settled
from tests.intake.test_contacts import call


async def flags_between(supervisor, a: str, b: str) -> list[dict]:
    flags = (await supervisor.get("/duplicates", params={"status": "open"})).json()
    return [f for f in flags if {f["case_id"], f["other_case_id"]} == {a, b}]


async def test_same_victim_in_the_same_commune_is_flagged_and_merged(operator, as_role):
    supervisor = as_role("supervisor", sub="sup-dup")
    base = {"province_code": "01", "commune_code": "00004"}
    first = (await create(operator, {**base, "victims": [{"name": "Đặng Thị Hoa", "age": 19}]})).json()
    second = (await create(operator, {**base, "victims": [{"name": "dang thi  HOA"}]})).json()
    elsewhere = (await create(operator, {"province_code": "01", "commune_code": "00070",
                                         "victims": [{"name": "Đặng Thị Hoa"}]})).json()
    flags = await flags_between(supervisor, first["id"], second["id"])
    assert [f["reasons"] for f in flags] == [["same_victim"]]
    assert await flags_between(supervisor, first["id"], elsewhere["id"]) == []
    assert (await operator.get("/duplicates")).status_code == 403

    v = (await settled(supervisor, second))["version"]
    merged = await supervisor.post(f"/cases/{second['id']}/merge", json={"into_case_id": first["id"]},
                                   headers=if_match(v))
    assert merged.status_code == 200, merged.text
    assert (merged.json()["status"], merged.json()["outcome"]) == ("closed", "duplicate")
    assert await flags_between(supervisor, first["id"], second["id"]) == []  # resolved
    history = (await supervisor.get("/duplicates", params={"status": "merged"})).json()
    assert any({f["case_id"], f["other_case_id"]} == {first["id"], second["id"]} for f in history)
    assert (await supervisor.get(f"/cases/{second['id']}")).status_code == 200  # both histories remain
    again = await supervisor.post(f"/cases/{second['id']}/merge", json={"into_case_id": first["id"]},
                                  headers=if_match(v + 1))
    assert again.status_code == 409


async def test_same_caller_phone_flags_and_a_flag_can_be_dismissed(operator, as_role):
    supervisor = as_role("supervisor", sub="sup-dup2")
    base = {"province_code": "01", "commune_code": "00008"}
    cases = []
    for phone in ("0988 111 222", "+84988111222"):
        contact = (await operator.post("/contacts", json=call(contact_type="information_report",
                                                              caller_phone=phone))).json()
        cases.append((await create(operator, {**base, "contact_id": contact["id"]})).json())
    [flag] = await flags_between(supervisor, cases[0]["id"], cases[1]["id"])
    assert flag["reasons"] == ["same_caller_phone"]
    dismissed = await supervisor.post(f"/duplicates/{flag['id']}/dismiss")
    assert dismissed.json()["status"] == "dismissed" and dismissed.json()["resolved_by"] == "sup-dup2"


async def test_block_flags_expire_never_delete_history_and_only_supervisors_set_them(operator, as_role):
    supervisor = as_role("supervisor", sub="sup-block")
    first = (await operator.post("/contacts", json=call(caller_phone="0977 000 111"))).json()
    assert (await operator.post(f"/contacts/{first['id']}/block",
                                json={"duration": "24h", "reason": "abusive"})).status_code == 403
    block = await supervisor.post(f"/contacts/{first['id']}/block", json={"duration": "30d", "reason": "prank"})
    assert block.status_code == 201
    later = (await operator.post("/contacts", json=call(caller_phone="0977000111"))).json()
    assert later["caller_blocked_until"] is not None  # still recorded, and the operator sees the block
    assert later["earlier_contacts_from_number"] == 1
    lifted = await supervisor.post(f"/blocks/{block.json()['id']}/lift")
    assert lifted.json()["lifted_by"] == "sup-block"
    assert (await operator.get(f"/contacts/{later['id']}")).json()["caller_blocked_until"] is None
    bad = await supervisor.post(f"/contacts/{first['id']}/block", json={"duration": "1y", "reason": "prank"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "duration"
