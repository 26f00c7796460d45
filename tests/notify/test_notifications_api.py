"""The notifications API, on notify as create_app builds it: hotline staff list alerts (filters, cursor pages),
read one with its text, and send a failed one again as a new notification that the dispatcher then sends."""
import uuid
from datetime import timedelta

import pytest

from tests.notify.pipeline import created, email, mailbox, notify, number, park_pending, sms

OPERATOR = ("operator",)


@pytest.fixture(scope="module")
async def api(db, stack, routes, sms_gateway):
    """notify with one referral sent: its email delivered, its SMS refused for good by the gateway."""
    phone, address = number(), mailbox()
    await park_pending(db[0])
    await sms_gateway.control(to=phone, mode="reject_4xx")
    providers = [p for p in sms_gateway.providers() if p["adapter"] == "generic"]
    async with notify(db, stack, routes, sms_providers=providers) as n:
        referral = created(sms(phone), email(address))
        await n.handle(referral)
        rows = await n.settle(*[r["id"] for r in await n.rows(referral.referral_id)])
        assert sorted(r["status"] for r in rows) == ["delivered", "permanent-failure"]
        await sms_gateway.control(to=phone, mode="ok")  # the number works again: a resend reaches it
        n.sent = referral
        yield n


async def listing(api, roles=OPERATOR, **params):
    r = await api.http.get("/notifications", params=params, headers=api.headers(*roles))
    assert r.status_code == 200, r.text
    return r.json()


async def test_only_hotline_staff_see_notifications(api):
    [row] = [r for r in await api.rows(api.sent.referral_id) if r["channel"] == "email"]
    for path in ("/notifications", f"/notifications/{row['id']}"):
        r = await api.http.get(path)
        assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
        assert (await api.http.get(path, headers=api.headers("agency"))).status_code == 403
        for role in ("operator", "supervisor", "admin"):
            assert (await api.http.get(path, headers=api.headers(role))).status_code == 200
    assert (await api.http.post(f"/notifications/{row['id']}/resend")).status_code == 401


async def test_list_filters_by_referral_status_channel_and_time(api):
    rows = {r["channel"]: r for r in await api.rows(api.sent.referral_id)}
    referral_id = str(api.sent.referral_id)

    def ids(page):
        return sorted(item["id"] for item in page["items"])

    everything = await listing(api, referral_id=referral_id)
    assert ids(everything) == sorted(str(r["id"]) for r in rows.values())
    failed_or_delivered = await listing(api, referral_id=referral_id, status=["delivered", "permanent-failure"])
    assert ids(failed_or_delivered) == ids(everything)  # `status` repeated: any of them
    assert ids(await listing(api, referral_id=referral_id, status="permanent-failure")) == [str(rows["sms"]["id"])]
    assert ids(await listing(api, referral_id=referral_id, channel="email")) == [str(rows["email"]["id"])]
    assert ids(await listing(api, referral_id=referral_id, status="sent")) == []
    at = rows["email"]["created_at"]  # both were recorded at the instant notify took their event
    assert ids(await listing(api, referral_id=referral_id, **{"from": at.isoformat()})) == ids(everything)
    assert ids(await listing(api, referral_id=referral_id, to=at.isoformat())) == []  # `to` is exclusive
    assert ids(await listing(api, referral_id=referral_id, to=(at + timedelta(microseconds=1)).isoformat())) == ids(
        everything)
    assert ids(await listing(api, referral_id=referral_id, **{"from": (at + timedelta(seconds=1)).isoformat()})) == []
    item = next(i for i in everything["items"] if i["channel"] == "sms")
    assert (item["status"], item["provider_code"], item["attempts"]) == ("permanent-failure", "invalid_number", 1)
    assert "body" not in item and "subject" not in item  # the text is read one at a time
    r = await api.http.get("/notifications", params={"channel": "pigeon"}, headers=api.headers(*OPERATOR))
    assert r.status_code == 422


async def test_pages_follow_the_cursor_newest_first(api):
    contacts = [email(mailbox(f"page{i}")) for i in range(5)]
    referral = created(*contacts)
    await api.handle(referral)
    expected = sorted(((r["created_at"], str(r["id"])) for r in await api.rows(referral.referral_id)), reverse=True)
    seen, cursor, sizes = [], None, []
    while True:
        more = {"cursor": cursor} if cursor else {}
        page = await listing(api, referral_id=str(referral.referral_id), limit=2, **more)
        sizes.append(len(page["items"]))
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sizes == [2, 2, 1] and seen == [i for _, i in expected]  # ties on the time are ordered by id
    r = await api.http.get("/notifications", params={"cursor": "not-a-cursor"}, headers=api.headers(*OPERATOR))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "cursor"


async def test_one_notification_shows_its_subject_and_body(api):
    rows = {r["channel"]: r for r in await api.rows(api.sent.referral_id)}
    for row in rows.values():
        r = await api.http.get(f"/notifications/{row['id']}", headers=api.headers(*OPERATOR))
        assert r.status_code == 200
        one = r.json()
        assert (one["subject"], one["body"], one["recipient"]) == (row["subject"], row["body"], row["recipient"])
        assert (one["kind"], one["language"], one["template_version"]) == ("referral.created", "vi", 1)
    assert api.sent.case_number in rows["email"]["subject"] and rows["sms"]["subject"] == ""
    r = await api.http.get(f"/notifications/{uuid.uuid4()}", headers=api.headers(*OPERATOR))
    assert r.status_code == 404


async def test_a_failed_notification_is_sent_again_as_a_new_one(api, sms_gateway):
    rows = {r["channel"]: r for r in await api.rows(api.sent.referral_id)}
    failed = rows["sms"]
    r = await api.http.post(f"/notifications/{failed['id']}/resend", headers=api.headers(*OPERATOR))
    assert r.status_code == 201, r.text
    again = r.json()
    assert again["id"] != str(failed["id"]) and again["resend_of"] == str(failed["id"])
    assert (again["status"], again["attempts"], again["recipient"], again["body"], again["channel"]) == (
        "created", 0, failed["recipient"], failed["body"], "sms")
    # One resend at a time: a second is refused while the first is on its way.
    r = await api.http.post(f"/notifications/{failed['id']}/resend", headers=api.headers(*OPERATOR))
    assert r.status_code == 409 and r.json()["errors"][0]["field"] == "notification_id"

    resent = uuid.UUID(again["id"])
    [row] = await api.settle(resent)
    assert (row["status"] in ("sent", "delivered"), row["attempts"], row["provider"]) == (True, 1, "local-generic")
    [message] = await sms_gateway.messages(failed["recipient"])  # the refused one never reached the gateway
    assert message["id"] == row["provider_ref"] and message["body"] == failed["body"]
    reported = await api.reported(resent)
    assert reported[:2] == ["created", "sending"] and reported[-1] in ("sent", "delivered")
    assert (await api.row(failed["id"]))["status"] == "permanent-failure"  # the original keeps its history


async def test_a_delivered_or_unknown_notification_is_not_sent_again(api):
    delivered = next(r for r in await api.rows(api.sent.referral_id) if r["status"] == "delivered")
    r = await api.http.post(f"/notifications/{delivered['id']}/resend", headers=api.headers(*OPERATOR))
    assert r.status_code == 409 and r.json()["errors"][0]["field"] == "status"
    r = await api.http.post(f"/notifications/{uuid.uuid4()}/resend", headers=api.headers(*OPERATOR))
    assert r.status_code == 404
    assert (await api.http.post(f"/notifications/{delivered['id']}/resend",
                                headers=api.headers("agency"))).status_code == 403
