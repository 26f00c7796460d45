"""Templates in notify's database: the defaults seeded once however many replicas start, versions that never
collide, the book the dispatcher reads (reloaded when a version is added, Vietnamese when the language has
none), the service functions and the /templates API."""
import asyncio

import httpx
import pytest

from runtime.auth import AuthSettings, install_auth, issue_token
from runtime.db import create_engine, notify_channel, session_factory
from runtime.problems import DomainError, NotFound
from runtime.service import ServiceRuntime, build_app
from runtime.settings import ServiceSettings
from runtime.uow import UnitOfWork
from services.notify.models import metadata, outbox
from services.notify.templates import repository, service
from services.notify.templates.kinds import SAMPLE_EVENTS, Kind, context_for
from services.notify.templates.rendering import MAX_SMS_SEGMENTS, TemplateInvalid, render
from services.notify.templates.repository import NoTemplate, TemplateBook
from services.notify.templates.schemas import PreviewIn, TemplateIn, TemplateQuery
from services.notify.templates.seed import SYSTEM, defaults, defaults_worker, ensure_defaults
from services.notify.templates.views import router
from tests.support import own_database

SECRET = "templates-test-secret-0123456789abcdef"
ALL = len(Kind) * 2 * 2  # kinds × channels × languages


def uow(engine) -> UnitOfWork:
    return UnitOfWork(session_factory(engine), outbox, "/tests/notify-templates", notify_channel("notify"))


async def seed(engine) -> int:
    async with session_factory(engine)() as session:
        inserted = await ensure_defaults(session)
        await session.commit()
        return inserted


@pytest.fixture(scope="module")
async def seeded(db):
    await seed(db[0])
    return db


@pytest.fixture
async def fresh(stack):
    """An empty notify database of this test's own."""
    engine = create_engine(await own_database(stack, "notify"), pool_size=6)
    yield engine
    await engine.dispose()


async def test_defaults_are_seeded_once_under_concurrent_starts(fresh):
    counts = await asyncio.gather(*(seed(fresh) for _ in range(4)))
    assert sum(counts) == ALL and await seed(fresh) == 0
    async with session_factory(fresh)() as session:
        rows = await repository.all_versions(session)
    assert len(rows) == ALL and {(r.version, r.created_by) for r in rows} == {(1, SYSTEM)}
    assert {(r.kind, r.channel, r.language, r.body) for r in rows} == {
        (d.kind, d.channel, d.language, d.body) for d in defaults()}


async def test_defaults_worker_seeds_once_and_ends(fresh):
    await asyncio.wait_for(defaults_worker(session_factory(fresh))(asyncio.Event()), 30)
    assert await seed(fresh) == 0


async def test_seeding_leaves_an_existing_version_alone(fresh):
    async with uow(fresh) as u:
        await service.create_version(u, "referral.closed", "sms", "vi", TemplateIn(body="Đóng {{ reference }}"),
                                     "admin-1")
    assert await seed(fresh) == ALL - 1
    async with session_factory(fresh)() as session:
        row = await repository.get(session, "referral.closed", "sms", "vi")
    assert (row.version, row.body, row.created_by) == (1, "Đóng {{ reference }}", "admin-1")


async def test_book_falls_back_to_vietnamese_then_says_what_is_missing(fresh):
    book = TemplateBook()
    async with session_factory(fresh)() as session:
        with pytest.raises(NoTemplate, match="referral.reminder.*'en'.*'vi'"):
            await book.current(session, "referral.reminder", "sms", "en")
        await repository.insert_next(session, "referral.reminder", "sms", "vi", "", "Nhắc {{ reference }}", "a")
        await session.commit()
        row = await book.current(session, "referral.reminder", "sms", "en")
        assert (row.language, row.version) == ("vi", 1)


async def test_book_reloads_when_any_process_adds_a_version(seeded):
    engine = seeded[0]
    book = TemplateBook()
    async with session_factory(engine)() as session:
        before = await book.current(session, "referral.created", "email", "en")
        assert before.language == "en" and await book.current(session, "referral.created", "email", "en") is before
    async with uow(engine) as u:  # as another replica would
        await service.create_version(u, "referral.created", "email", "en",
                                     TemplateIn(subject="[111] {{ reference }}", body="Case {{ reference }}."), "adm")
    async with session_factory(engine)() as session:
        after = await book.current(session, "referral.created", "email", "en")
    assert after.version == before.version + 1 and after.body == "Case {{ reference }}."


async def test_concurrent_saves_get_consecutive_versions(seeded):
    engine = seeded[0]

    async def save(i: int) -> int:
        async with uow(engine) as u:
            out = await service.create_version(u, "referral.escalated", "sms", "en",
                                               TemplateIn(body=f"#{i} case {{{{ reference }}}}"), f"admin-{i}")
            return out.version

    versions = await asyncio.gather(*(save(i) for i in range(6)))
    assert sorted(versions) == list(range(2, 8))
    async with uow(engine) as u:
        listed = await service.list_templates(u, TemplateQuery(kind="referral.escalated", channel="sms",
                                                               language="en", all_versions=True))
    assert [t.version for t in listed] == list(range(7, 0, -1))


async def test_a_broken_template_is_refused_and_nothing_is_saved(seeded):
    engine = seeded[0]
    async with uow(engine) as u:
        with pytest.raises(TemplateInvalid) as caught:
            await service.create_version(u, "referral.closed", "email", "vi",
                                         TemplateIn(subject="[111] {{ reference }}", body="a\n{{ unit | nope }}"), "x")
    assert (caught.value.field, caught.value.line) == ("body", 2)
    async with uow(engine) as u:
        assert (await service.get_template(u, "referral.closed", "email", "vi")).version == 1


async def test_list_get_and_versions(seeded):
    engine = seeded[0]
    async with uow(engine) as u:
        latest = await service.list_templates(u, TemplateQuery())
        assert len(latest) == ALL and len({(t.kind, t.channel, t.language) for t in latest}) == ALL
        sms_vi = await service.list_templates(u, TemplateQuery(channel="sms", language="vi"))
        assert {t.kind for t in sms_vi} == set(Kind) and {t.channel for t in sms_vi} == {"sms"}
        first = await service.get_template(u, "referral.created", "sms", "vi", 1)
        assert first.created_by == SYSTEM
        with pytest.raises(NotFound):
            await service.get_template(u, "referral.created", "sms", "vi", 99)


async def test_preview_stored_draft_and_posted_values(seeded):
    engine = seeded[0]
    async with uow(engine) as u:
        stored = await service.preview(u, PreviewIn(kind="referral.created", channel="sms", language="vi"))
        assert stored.version >= 1 and stored.encoding == "ucs2" and stored.segments <= MAX_SMS_SEGMENTS
        assert stored.max_segments == MAX_SMS_SEGMENTS and "111-2026-000042" in stored.body
        posted = await service.preview(u, PreviewIn(kind="referral.created", channel="sms", language="vi",
                                                    context={"reference": "111-2026-999999", "ack_url": ""}))
        assert "111-2026-999999" in posted.body and "https://" not in posted.body
        # A draft is shown even when too long to save, so its author sees by how much.
        draft = await service.preview(u, PreviewIn(kind="referral.created", channel="sms", language="en",
                                                   body="{{ reference }} " + "x" * 1000))
        assert draft.version is None and draft.encoding == "gsm7" and draft.segments == 7
        email = await service.preview(u, PreviewIn(kind="referral.closed", channel="email", language="en"))
        assert email.subject == "[111] Case 111-2026-000042: the referral is closed" and email.segments is None
        with pytest.raises(DomainError) as caught:
            await service.preview(u, PreviewIn(kind="referral.closed", channel="sms", language="vi",
                                               context={"victim_name": "x"}))
        assert caught.value.field == "context.victim_name"
        with pytest.raises(DomainError) as caught:
            await service.preview(u, PreviewIn(kind="referral.closed", channel="sms", language="vi", version=1,
                                               body="{{ reference }}"))
        assert caught.value.field == "version"
        with pytest.raises(TemplateInvalid):
            await service.preview(u, PreviewIn(kind="referral.closed", channel="sms", language="vi",
                                               body="{{ deadline }}"))


async def test_the_books_template_renders_the_dispatchers_context(seeded):
    engine = seeded[0]
    async with session_factory(engine)() as session:
        row = await TemplateBook().current(session, "referral.reminder", "sms", "en")
    out = render(row, context_for(Kind.reminder, SAMPLE_EVENTS[Kind.reminder], row.language))
    assert out.size.encoding == "gsm7" and "111-2026-000042" in out.body


# ---- the API: the router in an app built like notify's (its runtime, problems and auth) ----------------------

def bearer(role: str) -> dict:
    settings = AuthSettings(auth_mode="hs256", auth_hs256_secret=SECRET)
    return {"Authorization": f"Bearer {issue_token(settings, sub=f'{role}-1', roles=[role])}"}


@pytest.fixture(scope="module")
async def client(seeded):
    # Not services.notify.app.create_app itself: its consumers, dispatcher and settings are not under test here.
    runtime = ServiceRuntime("notify", metadata, ServiceSettings(database_url=seeded[1], db_pool_size=2))
    app = build_app(runtime, [router], "Notify", "templates under test")
    install_auth(app, AuthSettings(auth_mode="hs256", auth_hs256_secret=SECRET))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://notify") as c:
        yield c
    await runtime.engine.dispose()


async def test_api_roles(client):
    assert (await client.get("/templates")).status_code == 401
    assert (await client.get("/templates", headers=bearer("agency"))).status_code == 403
    listed = await client.get("/templates", params={"kind": "referral.created"}, headers=bearer("operator"))
    assert listed.status_code == 200 and {t["kind"] for t in listed.json()} == {"referral.created"}
    body = {"body": "{{ reference }}"}
    r = await client.post("/templates/referral.closed/sms/en", json=body, headers=bearer("supervisor"))
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"


async def test_api_new_version_get_and_preview(client):
    r = await client.post("/templates/referral.closed/sms/en", headers=bearer("admin"),
                          json={"body": "111: case {{ reference }} closed."})
    assert r.status_code == 201, r.text
    saved = r.json()
    assert saved["version"] >= 2 and saved["created_by"] == "admin-1"
    assert r.headers["location"] == f"/templates/referral.closed/sms/en?version={saved['version']}"
    current = (await client.get("/templates/referral.closed/sms/en", headers=bearer("operator"))).json()
    assert current["version"] == saved["version"]
    older = await client.get("/templates/referral.closed/sms/en", params={"version": 1}, headers=bearer("admin"))
    assert older.json()["version"] == 1 and older.json()["created_by"] == SYSTEM
    preview = await client.post("/templates/preview", headers=bearer("operator"),
                                json={"kind": "referral.closed", "channel": "sms", "language": "en"})
    assert preview.status_code == 200 and preview.json()["body"] == "111: case 111-2026-000042 closed."
    assert preview.json()["segments"] == 1 and preview.json()["encoding"] == "gsm7"


async def test_api_problems_name_the_field(client):
    r = await client.post("/templates/referral.closed/email/vi", headers=bearer("admin"),
                          json={"subject": "[111] {{ reference }}", "body": "Kính gửi,\n{% if unit %}\n"})
    problem = r.json()
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert problem["type"].endswith("/template-invalid")
    assert problem["errors"][0]["field"] == "body" and problem["errors"][0]["line"] == 2
    r = await client.get("/templates/referral.lost/sms/vi", headers=bearer("operator"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "kind"
    r = await client.get("/templates/referral.closed/sms/vi", params={"version": 40}, headers=bearer("operator"))
    assert r.status_code == 404
    r = await client.post("/templates/preview", headers=bearer("operator"),
                          json={"kind": "referral.closed", "channel": "sms", "language": "vi", "context": {"x": "1"}})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "context.x"
