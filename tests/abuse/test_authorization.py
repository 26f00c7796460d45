"""Who may call what: every credential against every endpoint of the four running services.

The endpoints come from each service's /openapi.json, so a new endpoint without a line in POLICY fails
here until someone decides who may call it. POLICY itself is written by hand from the README's API
section and the views' `require(...)` dependencies; it is never derived from the running code, which
would only test the code against itself.

Each cell is one request:

* no token, an expired token, a token signed with another key and an unsigned (`alg: none`) token, the
  last three claiming every role: 401 on every protected endpoint, with a Bearer challenge;
* a valid token whose role the endpoint does not admit (and a token with only roles the platform does
  not know): 403;
* a valid token whose role it admits: anything but 401/403. Path parameters are plausible ids that do
  not exist, and changes are sent without a body, so an admitted caller gets a 404, 422 or 428 and
  nothing changes (other tests share the stack);
* public endpoints (probes, metrics, the API documents, the directory's open list, acknowledge links
  and SMS receipts, which carry their own credential): the same answer whatever bearer token comes with
  the request.

FastAPI runs the dependencies (the auth decision) before it validates path, query and body, but it
parses a JSON body before any dependency: `test_junk_input_gets_the_auth_decision_first` holds the
services to answering strangers 401/403, never a 422 that tells them about the input.
"""
import asyncio
import base64
import json
import os
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from runtime.auth import AuthSettings, Role, issue_token
from services.referral.referrals.links import AckLinks
from tests.e2e.slice import report
from tests.support import eventually

SERVICES = ("intake", "referral", "notify", "reporting")

# ------------------------------------------------------------------------------------------ policy
PUBLIC = "public"
OPERATOR, SUPERVISOR, AUDITOR, AGENCY, ADMIN, ANALYST = (r.value for r in Role)
STAFF = frozenset({OPERATOR, SUPERVISOR})
STAFF_OR_ADMIN = STAFF | {ADMIN}

# (service, method, path template) -> the roles admitted, or PUBLIC. From the README ("APIs") and the views.
POLICY: dict[tuple[str, str, str], frozenset[str] | str] = {
    # intake: every call needs a token; operators and supervisors record and read, supervisors alone
    # supervise, auditors read only the audit log.
    ("intake", "GET", "/healthz"): PUBLIC,
    ("intake", "GET", "/readyz"): PUBLIC,
    ("intake", "POST", "/contacts"): STAFF,
    ("intake", "GET", "/contacts"): STAFF,
    ("intake", "GET", "/contacts/{contact_id}"): STAFF,
    ("intake", "GET", "/contacts/{contact_id}/personal-data"): STAFF,
    ("intake", "POST", "/contacts/{contact_id}/attach"): STAFF,
    ("intake", "POST", "/cases"): STAFF,
    ("intake", "GET", "/cases"): STAFF,
    ("intake", "GET", "/cases/{case_id}"): STAFF,
    ("intake", "PATCH", "/cases/{case_id}"): STAFF,
    ("intake", "POST", "/cases/{case_id}/status"): STAFF,
    ("intake", "GET", "/cases/{case_id}/personal-data"): STAFF,
    ("intake", "POST", "/cases/{case_id}/notes"): STAFF,
    ("intake", "GET", "/duplicates"): frozenset({SUPERVISOR}),
    ("intake", "POST", "/duplicates/{flag_id}/dismiss"): frozenset({SUPERVISOR}),
    ("intake", "POST", "/cases/{case_id}/merge"): frozenset({SUPERVISOR}),
    ("intake", "POST", "/contacts/{contact_id}/block"): frozenset({SUPERVISOR}),
    ("intake", "POST", "/blocks/{block_id}/lift"): frozenset({SUPERVISOR}),
    ("intake", "GET", "/audit"): frozenset({AUDITOR}),
    # referral: staff see every referral and match; agencies their own referrals; staff and admins read
    # the directory, admins change it; the directory's list and acknowledge links are open.
    ("referral", "GET", "/healthz"): PUBLIC,
    ("referral", "GET", "/readyz"): PUBLIC,
    ("referral", "GET", "/referrals"): STAFF,
    ("referral", "GET", "/referrals/{referral_id}"): STAFF,
    ("referral", "GET", "/agency-units"): PUBLIC,
    ("referral", "POST", "/matching/dry-run"): STAFF,
    ("referral", "GET", "/matching/rules"): STAFF,
    ("referral", "GET", "/agency/referrals"): frozenset({AGENCY}),
    ("referral", "GET", "/agency/referrals/{referral_id}"): frozenset({AGENCY}),
    ("referral", "POST", "/agency/referrals/{referral_id}/acknowledge"): frozenset({AGENCY}),
    ("referral", "POST", "/agency/referrals/{referral_id}/accept"): frozenset({AGENCY}),
    ("referral", "POST", "/agency/referrals/{referral_id}/decline"): frozenset({AGENCY}),
    ("referral", "POST", "/agency/referrals/{referral_id}/outcomes"): frozenset({AGENCY}),
    ("referral", "POST", "/agency/referrals/{referral_id}/close"): frozenset({AGENCY}),
    ("referral", "GET", "/ack/{token}"): PUBLIC,  # the signed link is the credential
    ("referral", "POST", "/ack/{token}"): PUBLIC,
    ("referral", "GET", "/directory/units"): STAFF_OR_ADMIN,
    ("referral", "POST", "/directory/units"): frozenset({ADMIN}),
    ("referral", "GET", "/directory/stale"): STAFF_OR_ADMIN,
    ("referral", "GET", "/directory/units/{code}"): STAFF_OR_ADMIN,
    ("referral", "PUT", "/directory/units/{code}"): frozenset({ADMIN}),
    ("referral", "POST", "/directory/units/{code}/status"): frozenset({ADMIN}),
    ("referral", "POST", "/directory/units/{code}/verify"): frozenset({ADMIN}),
    ("referral", "POST", "/directory/import"): frozenset({ADMIN}),
    ("referral", "GET", "/directory/export"): STAFF_OR_ADMIN,
    # notify: staff and admins see alerts and templates, admins save templates and manage webhooks;
    # providers' receipts are signed by the provider.
    ("notify", "GET", "/healthz"): PUBLIC,
    ("notify", "GET", "/readyz"): PUBLIC,
    ("notify", "GET", "/notifications"): STAFF_OR_ADMIN,
    ("notify", "GET", "/notifications/{notification_id}"): STAFF_OR_ADMIN,
    ("notify", "POST", "/notifications/{notification_id}/resend"): STAFF_OR_ADMIN,
    ("notify", "GET", "/templates"): STAFF_OR_ADMIN,
    ("notify", "POST", "/templates/preview"): STAFF_OR_ADMIN,
    ("notify", "GET", "/templates/{kind}/{channel}/{language}"): STAFF_OR_ADMIN,
    ("notify", "POST", "/templates/{kind}/{channel}/{language}"): frozenset({ADMIN}),
    ("notify", "POST", "/webhooks"): frozenset({ADMIN}),
    ("notify", "GET", "/webhooks"): frozenset({ADMIN}),
    ("notify", "GET", "/webhooks/{endpoint_id}"): frozenset({ADMIN}),
    ("notify", "PATCH", "/webhooks/{endpoint_id}"): frozenset({ADMIN}),
    ("notify", "POST", "/webhooks/{endpoint_id}/rotate-secret"): frozenset({ADMIN}),
    ("notify", "POST", "/callbacks/sms/{provider}"): PUBLIC,  # authenticated by the provider's signature
    # reporting: analysts only (an admin alone is not an analyst; suppress=false needs both, below).
    ("reporting", "GET", "/healthz"): PUBLIC,
    ("reporting", "GET", "/readyz"): PUBLIC,
    ("reporting", "GET", "/v1/stats"): frozenset({ANALYST}),
    ("reporting", "GET", "/v1/stats/summary"): frozenset({ANALYST}),
    ("reporting", "GET", "/v1/stats/referrals/acknowledgement"): frozenset({ANALYST}),
    ("reporting", "GET", "/v1/stats/notifications/delivery"): frozenset({ANALYST}),
    ("reporting", "GET", "/v1/stats/cases/time-to-referral"): frozenset({ANALYST}),
    ("reporting", "GET", "/v1/stats/{measure}"): frozenset({ANALYST}),
    ("reporting", "GET", "/v1/export/ctdc"): frozenset({ANALYST}),
}
# Served by every service but kept out of its OpenAPI document.
UNLISTED_PUBLIC = ("/metrics", "/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect")

# Public endpoints answer the same whatever bearer token comes along; this is what they answer here (200 if
# not listed). Readiness may change between two requests of the run, so it is not held to one answer.
PUBLIC_STATUS = {
    "/ack/{token}": {404},  # a link signed with the real key, for a referral that does not exist
    "/callbacks/sms/{provider}": {401},  # a real provider's name, an unsigned receipt
    "/readyz": {200, 503},
}
VOLATILE = {"/readyz"}

# Plausible values of the path parameters: ids nobody has, names that exist. An unknown parameter fails
# the test, so a new endpoint gets a value chosen for it.
MISSING_ID = str(uuid.uuid4())
PATH_VALUES = {
    "case_id": MISSING_ID, "contact_id": MISSING_ID, "flag_id": MISSING_ID, "block_id": MISSING_ID,
    "referral_id": MISSING_ID, "notification_id": MISSING_ID, "endpoint_id": MISSING_ID,
    "code": "police-commune-99999",  # well-formed, not in the directory
    "kind": "referral.created", "channel": "sms", "language": "vi",
    "measure": "cases",
    "provider": "local-generic",  # the local SMS gateway's account in the test stack
    # "token": an acknowledge link signed with the stack's key, made per stack (ack_token)
}
# Cheap queries for endpoints that would otherwise answer megabytes: still past the auth decision.
QUERIES = {("referral", "/directory/export"): {"format": "none-such"}}

# An admitted caller must change nothing: a change without a body, or on a missing id, ends here.
UNCHANGED = {404, 409, 412, 422, 428}
READ_OK = {200, 404, 422}

UNIT_A, UNIT_B = "police-province-01", "police-province-79"  # Hà Nội's and Hồ Chí Minh City's police
VALID = ("operator", "supervisor", "agency_a", "agency_b", "analyst", "auditor", "admin", "unknown_role")
INVALID = ("expired", "bad_signature", "alg_none", "no_token")
ROLE_OF = {"operator": OPERATOR, "supervisor": SUPERVISOR, "agency_a": AGENCY, "agency_b": AGENCY,
           "analyst": ANALYST, "auditor": AUDITOR, "admin": ADMIN, "unknown_role": None}


def _settings(stack, secret: str | None = None) -> AuthSettings:
    return AuthSettings.from_env({**os.environ, **stack.extra_env}, auth_mode="hs256",
                                 auth_hs256_secret=secret or stack.auth_secret)


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def credentials(stack) -> dict[str, str | None]:
    """Bearer tokens by name; None sends no Authorization header."""
    every_role = [r.value for r in Role]
    good = _settings(stack)
    claims = {"sub": "abuse-mallory", "aud": good.auth_audience, "exp": int(time.time()) + 3600,
              "roles": every_role, "agency_units": [UNIT_A, UNIT_B]}
    return {
        "operator": stack.token(OPERATOR, sub="abuse-op"),
        "supervisor": stack.token(SUPERVISOR, sub="abuse-sup"),
        "agency_a": stack.token(AGENCY, sub="abuse-agency-a", agency_units=[UNIT_A]),
        "agency_b": stack.token(AGENCY, sub="abuse-agency-b", agency_units=[UNIT_B]),
        "analyst": stack.token(ANALYST, sub="abuse-analyst"),
        "auditor": stack.token(AUDITOR, sub="abuse-auditor"),
        "admin": stack.token(ADMIN, sub="abuse-admin"),
        # correctly signed, but its only roles are none the platform knows
        "unknown_role": issue_token(good, sub="abuse-root", roles=[], extra={"roles": ["root", "superuser"]}),
        # every role, but expired an hour ago (well past AUTH_LEEWAY_S)
        "expired": issue_token(good, sub="abuse-late", roles=every_role, ttl_s=-3600,
                               agency_units=[UNIT_A, UNIT_B]),
        # every role, signed with a key the services do not have
        "bad_signature": issue_token(_settings(stack, "k" * 43), sub="abuse-forger", roles=every_role,
                                     agency_units=[UNIT_A, UNIT_B]),
        # every role, unsigned
        "alg_none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        "no_token": None,
    }


def ack_token(stack) -> str:
    links = AckLinks(stack.link_secret, stack.url("referral"))
    return links.token(uuid.UUID(MISSING_ID), datetime.now(UTC) + timedelta(days=1))


# ------------------------------------------------------------------------------------------ plumbing
@dataclass(frozen=True)
class Endpoint:
    service: str
    method: str
    path: str  # template
    has_body: bool = False

    @property
    def policy(self) -> frozenset[str] | str:
        if self.path in UNLISTED_PUBLIC:
            return PUBLIC
        return POLICY[(self.service, self.method, self.path)]

    def url(self, stack, values: dict[str, str]) -> str:
        path = self.path
        for name in _params(path):
            if name not in values:
                raise AssertionError(f"{self}: no sample value for path parameter {name!r}; add one to PATH_VALUES")
            path = path.replace("{" + name + "}", values[name])
        return stack.url(self.service) + path

    def __str__(self) -> str:
        return f"{self.service} {self.method} {self.path}"


def _params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


async def listed_endpoints(http: httpx.AsyncClient, stack) -> list[Endpoint]:
    """Every operation in the four services' OpenAPI documents."""
    found = []
    for service in SERVICES:
        doc = (await http.get(f"{stack.url(service)}/openapi.json")).json()
        for path, operations in doc["paths"].items():
            for method, operation in operations.items():
                if method in ("get", "post", "put", "patch", "delete", "head", "options"):
                    found.append(Endpoint(service, method.upper(), path, "requestBody" in operation))
    return found


async def send_all(http: httpx.AsyncClient, requests: list[tuple], concurrency: int = 24) -> list[httpx.Response]:
    """(method, url, headers, params, content) each; answers in order, `concurrency` at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one(method, url, headers, params, content):
        async with gate:
            return await http.request(method, url, headers=headers, params=params, content=content)

    return await asyncio.gather(*(one(*r) for r in requests))


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def judge(endpoint: Endpoint, who: str, response: httpx.Response) -> str | None:
    """Why this cell is wrong, or None."""
    status, policy = response.status_code, endpoint.policy
    if policy == PUBLIC:
        return None  # judged across credentials in the test: the same answer for all
    if who in INVALID:
        if status != 401:
            return f"{status}, expected 401"
        if not response.headers.get("www-authenticate", "").startswith("Bearer"):
            return "401 without a Bearer challenge"
        return None
    if ROLE_OF[who] not in policy:
        return None if status == 403 else f"{status}, expected 403 (admitted: {sorted(policy)})"
    if status in (401, 403) or status >= 500:
        return f"{status}, expected the role to be admitted"
    expected = READ_OK if endpoint.method == "GET" else UNCHANGED
    return None if status in expected else f"{status}, expected one of {sorted(expected)} (nothing may change)"


# ------------------------------------------------------------------------------------------ the matrix
async def test_every_role_against_every_endpoint(http, stack):
    listed = await listed_endpoints(http, stack)
    listed_keys = {(e.service, e.method, e.path) for e in listed}
    unknown = sorted(listed_keys - POLICY.keys())
    assert not unknown, f"endpoints without a line in POLICY (decide who may call them): {unknown}"
    gone = sorted(POLICY.keys() - listed_keys)
    assert not gone, f"POLICY names endpoints the services no longer serve: {gone}"
    endpoints = listed + [Endpoint(s, "GET", p) for s in SERVICES for p in UNLISTED_PUBLIC]

    tokens = credentials(stack)
    values = PATH_VALUES | {"token": ack_token(stack)}
    cells = [(e, who) for e in endpoints for who in tokens]
    started = time.monotonic()
    responses = await send_all(http, [
        (e.method, e.url(stack, values), bearer(tokens[who]), QUERIES.get((e.service, e.path)), None)
        for e, who in cells])
    elapsed = time.monotonic() - started

    wrong = [f"{e} as {who}: {why}" for (e, who), r in zip(cells, responses) if (why := judge(e, who, r))]
    by_endpoint: dict[Endpoint, dict[str, int]] = {}
    for (e, who), r in zip(cells, responses):
        by_endpoint.setdefault(e, {})[who] = r.status_code
    for e, statuses in by_endpoint.items():
        if e.policy != PUBLIC:
            continue
        if len(set(statuses.values())) != 1 and e.path not in VOLATILE:
            wrong.append(f"{e} (public) answers differently by credential: {statuses}")
        if unexpected := {s for s in statuses.values() if s not in PUBLIC_STATUS.get(e.path, {200})}:
            wrong.append(f"{e} (public): {sorted(unexpected)}, expected {sorted(PUBLIC_STATUS.get(e.path, {200}))}")
    assert not wrong, "\n".join([f"{len(wrong)} of {len(cells)} cells wrong:", *wrong])
    print(f"\nauthorisation matrix: {len(endpoints)} endpoints ({len(listed)} in OpenAPI) x {len(tokens)} "
          f"credentials = {len(cells)} requests in {elapsed:.1f}s")


JUNK_QUERY = {"limit": "-1'", "from": "yesterday", "case_id": "1 OR 1=1", "format": "<x>", "cursor": "\x00"}


async def test_junk_input_gets_the_auth_decision_first(http, stack):
    """A stranger, or a caller of the wrong role, learns nothing about an endpoint's input: path ids that are
    not ids, a body that is not JSON (or not even UTF-8), a JSON body of the wrong shape all get the 401 or
    403 a well-formed request would. A 422 would answer before the auth decision."""
    tokens = credentials(stack)
    protected = [e for e in await listed_endpoints(http, stack) if e.policy != PUBLIC]
    junk_path = {name: "not-an-id'<x>" for name in PATH_VALUES} | {"token": "x"}
    bodies = [b"{", b"\xff\xfe\x00garbage", b'{"unexpected": [1, 2, {"deep": null}]}']
    requests, cells = [], []
    for e in protected:
        denied = next(who for who in VALID if ROLE_OF[who] not in e.policy)
        for who, expected in (("no_token", 401), (denied, 403)):
            variants = [(e.url(stack, junk_path), None, None)]  # and junk in the query, below
            if e.has_body:
                variants += [(e.url(stack, PATH_VALUES), {"content-type": "application/json"}, body) for body in bodies]
            for url, headers, body in variants:
                requests.append((e.method, url, bearer(tokens[who]) | (headers or {}), JUNK_QUERY, body))
                cells.append((e, who, expected, body))
    responses = await send_all(http, requests)
    wrong = [f"{e} as {who} with body {body!r}: {r.status_code}, expected {expected}: {r.text[:120]}"
             for (e, who, expected, body), r in zip(cells, responses) if r.status_code != expected]
    assert not wrong, "\n".join([f"{len(wrong)} of {len(cells)} requests answered before the auth decision:",
                                 *wrong])


async def test_lifting_suppression_needs_analyst_and_admin(http, stack):
    url = f"{stack.url('reporting')}/v1/stats/summary"
    params = {"suppress": "false", "group": "all"}
    answers = {}
    for roles in ((ANALYST,), (ADMIN,), (ANALYST, ADMIN), (OPERATOR, ADMIN)):
        r = await http.get(url, params=params, headers=bearer(stack.token(*roles, sub="abuse-rep")))
        answers[roles] = r.status_code
    assert answers == {(ANALYST,): 403, (ADMIN,): 403, (ANALYST, ADMIN): 200, (OPERATOR, ADMIN): 403}


# ------------------------------------------------------------------------------------------ agencies
@pytest.fixture(scope="module")
async def referred_case(stack):
    """A case in Hoàn Kiếm (Hà Nội) and its referrals, as the operator sees them: {case, referrals, units}."""
    async with httpx.AsyncClient(timeout=30) as http:
        case = await report(http, stack, province_code="01", commune_code="00070",
                            victims=[{"sex": "female", "age": 16, "needs": ["shelter"]}],
                            exploitation=["forced_marriage"])
        staff = bearer(stack.token(OPERATOR, sub="op-e2e"))

        async def referrals():
            r = await http.get(f"{stack.url('referral')}/referrals", params={"case_id": case["id"]}, headers=staff)
            return r.json() if r.status_code == 200 and len(r.json()) >= 2 else None

        found = await eventually(referrals, 60)
        directory = (await http.get(f"{stack.url('referral')}/agency-units",
                                    params={"province_code": "01", "limit": 1000})).json()
        codes = {u["id"]: u["code"] for u in directory}
        return {"case": case, "referrals": found, "code_of": {r["id"]: codes[r["agency_unit_id"]] for r in found}}


async def agency_list(http, stack, token: str) -> list[dict]:
    """Every referral an agency token lists, all pages."""
    items, cursor = [], None
    while True:
        r = await http.get(f"{stack.url('referral')}/agency/referrals", headers=bearer(token),
                           params={"limit": 200} | ({"cursor": cursor} if cursor else {}))
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if not cursor:
            return items


async def test_an_agency_reads_its_referral_and_no_other_agency_does(http, stack, referred_case):
    referral = next(r for r in referred_case["referrals"] if referred_case["code_of"][r["id"]].startswith("police-"))
    unit = referred_case["code_of"][referral["id"]]
    others = [c for c in referred_case["code_of"].values() if c != unit and not c.startswith("police-")]
    owner = stack.token(AGENCY, sub="abuse-owner", agency_units=[unit])
    strangers = {  # another province's police; a unit of the same case; a same-province unit of another kind
        "another province": stack.token(AGENCY, sub="abuse-hcmc", agency_units=[UNIT_B]),
        "another unit of the case": stack.token(AGENCY, sub="abuse-sibling", agency_units=others[:1]),
        "the province's health department": stack.token(AGENCY, sub="abuse-health", agency_units=["health-01"]),
    }
    base = f"{stack.url('referral')}/agency/referrals"

    mine = await http.get(f"{base}/{referral['id']}", headers=bearer(owner))
    assert mine.status_code == 200, mine.text
    assert mine.json()["case_number"] == referred_case["case"]["case_number"]
    assert referral["id"] in {r["id"] for r in await agency_list(http, stack, owner)}
    etag = mine.headers["etag"]

    nobody = await http.get(f"{base}/{uuid.uuid4()}", headers=bearer(owner))
    assert nobody.status_code == 404
    for who, token in strangers.items():
        theirs = await http.get(f"{base}/{referral['id']}", headers=bearer(token))
        assert theirs.status_code == 404, f"{who}: {theirs.status_code} {theirs.text}"
        # the same answer as for a referral that does not exist: existence does not leak
        missing_id = nobody.json()["instance"].rsplit("/", 1)[1]
        assert _shape(theirs.json(), referral["id"]) == _shape(nobody.json(), missing_id)
        assert referral["id"] not in {r["id"] for r in await agency_list(http, stack, token)}, who
        # nor may a stranger move it, with the right ETag
        moved = await http.post(f"{base}/{referral['id']}/acknowledge", headers=bearer(token) | {"If-Match": etag})
        assert moved.status_code == 404, f"{who}: {moved.status_code} {moved.text}"
    after = (await http.get(f"{base}/{referral['id']}", headers=bearer(owner))).json()
    assert after["acknowledged_at"] is None and after["status"] in ("created", "notified")  # delivery may move it


def _shape(problem: dict, referral_id: str) -> dict:
    """A 404 problem with the id it names taken out."""
    return json.loads(json.dumps(problem).replace(referral_id, "<id>"))


async def test_a_province_code_covers_its_commune_police_only(http, stack, referred_case):
    """README: a province police token also sees its commune police units' referrals."""
    commune = [r for r in referred_case["referrals"] if referred_case["code_of"][r["id"]].startswith("police-commune-")]
    assert commune, referred_case["code_of"]
    province = stack.token(AGENCY, sub="abuse-prov", agency_units=[UNIT_A])
    listed = {r["id"] for r in await agency_list(http, stack, province)}
    case_ids = {r["id"] for r in referred_case["referrals"]}
    police = {r["id"] for r in referred_case["referrals"] if referred_case["code_of"][r["id"]].startswith("police-")}
    assert listed & case_ids == police


# ------------------------------------------------------------------------------------------ analysts
async def test_an_analyst_sees_no_personal_data_and_no_case(http, stack):
    marker = f"Zq{uuid.uuid4().hex[:10]}"
    phone = "09" + "".join(random.choices("0123456789", k=8))
    name, narrative = f"Nguyễn Thị {marker}", f"Narrative {marker} karaoke near the border"
    staff = bearer(stack.token(OPERATOR, sub="op-e2e"))
    exact = bearer(stack.token(ANALYST, ADMIN, sub="abuse-rep"))
    summary = f"{stack.url('reporting')}/v1/stats/summary"

    async def reported() -> int:
        r = await http.get(summary, params={"province": "92", "suppress": "false", "group": "all"}, headers=exact)
        return {row["figure"]: row["value"] for row in r.json()["rows"]}["cases_reported"]

    before = await reported()
    contact = await http.post(f"{stack.url('intake')}/contacts", headers=staff, json={
        "channel": "phone", "contact_type": "information_report", "started_at": _ago(300), "ended_at": _ago(60),
        "caller_name": name, "caller_phone": phone, "notes": narrative})
    assert contact.status_code == 201, contact.text
    case = await report(http, stack, province_code="92", contact_id=contact.json()["id"], narrative=narrative,
                        victims=[{"name": name, "sex": "female", "age": 24, "ethnicity": marker}],
                        traffickers=[{"description": f"man called {marker}"}], location_text=marker)
    await eventually(lambda: _greater(reported(), before), 60)

    analyst = bearer(stack.token(ANALYST, sub="abuse-analyst"))
    doc = (await http.get(f"{stack.url('reporting')}/openapi.json")).json()
    measures = [m["name"] for m in (await http.get(f"{stack.url('reporting')}/v1/stats", headers=analyst)).json()]
    assert len(measures) >= 8, measures
    paths = [p.replace("{measure}", m) for p in doc["paths"] if p.startswith("/v1/")
             for m in (measures if "{measure}" in p else [""])]
    asks = [(path, who, headers, {"format": fmt, "group": "all", "by": _by(path)} | extra)
            for path in paths
            for who, headers, extra in (("analyst", analyst, {}), ("analyst+admin", exact, {"suppress": "false"}))
            if not (path == "/v1/export/ctdc" and extra)  # always k-anonymous: no suppress=false
            for fmt in ("json", "csv")]

    async def answers(asks):
        return await send_all(http, [("GET", stack.url("reporting") + p, h, q, None) for p, _, h, q in asks], 4)

    got = await answers(asks)
    # a breakdown the measure does not have is a 422: ask those without one
    again = [i for i, r in enumerate(got) if r.status_code == 422]
    for i, r in zip(again, await answers([(p, w, h, {k: v for k, v in q.items() if k != "by"})
                                         for p, w, h, q in (asks[i] for i in again)])):
        got[i] = r
    assert len(asks) >= 40
    for (path, who, _, params), r in zip(asks, got):
        assert r.status_code == 200, f"{path} {params} as {who}: {r.status_code} {r.text[:200]}"
        for secret in (marker, phone, phone[1:], case["id"], contact.json()["id"]):
            assert secret not in r.text, f"{path} {params} as {who} shows {secret!r}"

    # and the personal-data endpoints refuse an analyst outright, for this very case
    for url in (f"{stack.url('intake')}/cases/{case['id']}/personal-data", f"{stack.url('intake')}/cases/{case['id']}",
                f"{stack.url('intake')}/contacts/{contact.json()['id']}/personal-data",
                f"{stack.url('intake')}/contacts/{contact.json()['id']}",
                f"{stack.url('referral')}/referrals?case_id={case['id']}",
                f"{stack.url('notify')}/notifications?case_id={case['id']}"):
        r = await http.get(url, headers=analyst)
        assert r.status_code == 403, f"{url}: {r.status_code}"
        assert marker not in r.text


def _by(path: str) -> str:
    return "sex,age_band" if path.endswith("/victims") else "province"


async def _greater(value, than: int):
    return (await value) > than


def _ago(seconds: int) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()
