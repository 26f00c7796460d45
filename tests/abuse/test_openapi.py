"""Schemathesis against each service's own OpenAPI document, on the running stack (issue 8, "Abuse").

Every operation of intake, referral, notify and reporting is called with generated input, valid and not,
and every answer must hold to what the document promises:

* no server error (5xx);
* the status code is documented for the operation (401/403/503 on every operation that needs a token,
  422 wherever there is input, 404/409/412/428/413 where the route says so: runtime.problems.problems);
* the content type is documented (errors are application/problem+json, never FastAPI's default);
* the body and the documented headers validate against the response schema;
* plus schemathesis's other default checks: schema-invalid input is refused (negative data rejection), a
  method the path does not have is a 405 with an exact `Allow`, a documented-required header left out is
  refused, a resource just created can be read, one just deleted cannot.

Left out on purpose: `positive_data_acceptance` (a schema-valid request must be accepted). The schemas say
what a field looks like; what it means is checked by the services and answered with a 422 problem naming
the field: a province code of the 2025 map, a commune inside that province, a date range of at most 5000
periods, a cursor this API issued, a template that renders. Those 422s are the design, not defects.

Token: one with every staff role (operator, supervisor, auditor, admin, analyst); the agency operations
(/agency/...) get an agency token for a unit that only this module uses (see AGENCY_UNIT).

Shared state. The stack serves the whole session, so an operation whose generated input would change what
other tests rely on is not called (`EXCLUDED`, each with its reason). The rest is harmless: the fast run
does not feed values read from responses into later requests (`extra-data-sources` off), so the ids it
sends are random and name nothing that exists; what it creates (contacts, cases, notes, webhook
endpoints for units that do not exist) is its own, and other tests compare counts as differences or in
provinces of their own (as tests/intake/test_fuzz.py does too). The directory import is called with
`dry_run=true` forced, so it writes nothing.

Runs. `make test`: `test_openapi_conformance`, the examples and fuzzing phases with a few deterministic
examples per operation (FAST_EXAMPLES; 15 to 40 s for the four services, by the machine's load). `make test-long`:
`test_openapi_conformance_deep` adds the coverage phase (boundary and type-violating values of every
parameter, each header and the token left out, methods the path does not have), many more examples, values
read from answers fed into later requests, and stateful sequences that follow the documents' links (create,
then read, change and act on what was created), with a referred case of its own in a province no other
test uses. Both use schemathesis's engine, as `st run` does (see `run_schemathesis`), with one worker:
with several, schemathesis 4.32.5 fails some operations with "AST constructor recursion depth mismatch".
"""
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import httpx
import pytest
import schemathesis
from schemathesis import Config
from schemathesis.engine import StopReason, events

from tests.e2e.slice import report
from tests.support import eventually

SERVICES = ("intake", "referral", "notify", "reporting")
STAFF_ROLES = ("operator", "supervisor", "auditor", "admin", "analyst")
SUB = "schemathesis"
SEED = 111
# Tây Ninh's provincial police: no other test reports a case in province 80, so the agency token of this
# module sees only the referrals the deep run makes itself.
AGENCY_PROVINCE, AGENCY_UNIT = "80", "police-province-80"

# (service, method, path regex): operations not called, and why. None of them hides a defect: each is
# exercised by its service's own tests (tests/referral/test_directory_api.py, tests/notify/
# test_templates_service.py) against data those tests own.
EXCLUDED = (
    ("referral", "POST", r"^/directory/units$",
     "creates agency units in the one shared directory: every referral test matches against it, so a unit "
     "made here (say a police unit of province 01) would take referrals from other tests' cases"),
    ("referral", "PUT", r"^/directory/units/\{code\}$",
     "replaces a shared unit's contacts, kind or parent: matching and alerts of other tests would change"),
    ("referral", "POST", r"^/directory/units/\{code\}/status$",
     "deactivates shared units: the rules would skip them for every later case"),
    ("referral", "POST", r"^/directory/units/\{code\}/verify$",
     "changes the shared directory's verification dates (GET /directory/stale, tested elsewhere)"),
    ("notify", "POST", r"^/templates/\{kind\}/\{channel\}/\{language\}$",
     "a saved template is in force at once for every alert of every test: a generated body would replace "
     "the emails and SMS other tests read (their subject carries the case number they look for)"),
)
# Only in the deep run, which feeds values read from answers into later requests and follows links from
# listings to resources: these act on whatever a listing shows, which on a shared stack is other tests' data.
EXCLUDED_DEEP = (
    ("notify", "POST", r"^/notifications/\{notification_id\}/resend$",
     "sends another test's failed alert again, to a real recipient of the local gateway"),
    ("intake", "POST", r"^/(duplicates/\{flag_id\}/dismiss|contacts/\{contact_id\}/block|blocks/\{block_id\}/lift)$",
     "a supervisor's acts on flags and blocks the listings show, which may be other tests'"),
)
# Only in the fast run, for time: each call reads the whole directory (6,912 units), 1 to 7 s a call.
EXCLUDED_FAST = (
    ("referral", "GET", r"^/directory/export$", "the whole directory as a file: seconds a call"),
    ("referral", "POST", r"^/directory/import$", "checks a file against the whole directory: seconds a call"),
)
FAST_EXAMPLES, DEEP_EXAMPLES = 5, 50


def _config(stack, *, examples: int, deep: bool) -> Config:
    staff = stack.token(*STAFF_ROLES, sub=SUB, ttl_s=4 * 3600)
    agency = stack.token("agency", sub=f"{SUB}-agency", agency_units=[AGENCY_UNIT], ttl_s=4 * 3600)
    return Config.from_dict({
        "seed": SEED,
        "workers": 1,
        "headers": {"Authorization": f"Bearer {staff}"},
        "request-timeout": 30,
        "parameters": {"query.dry_run": True},  # POST /directory/import: check the file, write nothing
        "generation": {
            "max-examples": examples,
            "deterministic": True,  # the same inputs on every run: a failure reproduces
            "no-shrink": True,  # a failure is reported as found; shrinking would cost requests
            "database": "none",  # nothing remembered between runs (reproducible; no .hypothesis directory)
        },
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": deep},
            "fuzzing": {"enabled": True, "extra-data-sources": {"responses": deep}},
            "stateful": {"enabled": deep, "max-steps": 12},
        },
        "checks": {"positive_data_acceptance": {"enabled": False}},  # see the module docstring
        "operations": [
            {"include-path-regex": r"^/agency/", "headers": {"Authorization": f"Bearer {agency}"}},
            # Seconds a call (the whole directory): a few examples, and no coverage phase (tens of calls).
            {"include-path-regex": r"^/directory/(export|import)$", "generation": {"max-examples": 3},
             "phases": {"coverage": {"enabled": False}}},
        ],
    })


def _schema(stack, service: str, *, examples: int, deep: bool):
    config = _config(stack, examples=examples, deep=deep)
    schema = schemathesis.openapi.from_url(f"{stack.url(service)}/openapi.json", config=config)
    schema.config.update(base_url=stack.url(service))
    for owner, method, path, _why in EXCLUDED + (EXCLUDED_DEEP if deep else EXCLUDED_FAST):
        if owner == service:
            schema = schema.exclude(method=method, path_regex=path)
    return schema


@dataclass
class Run:
    failures: list[str] = field(default_factory=list)
    statuses: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))  # operation -> status -> n

    def problems(self, schema) -> list[str]:
        """The failures, and what would make a clean run hollow: an operation never called, or one that needs a
        token and only ever answered 401/403 (a token the services refuse would pass every check on its own)."""
        operations = {op.label: op for op in _operations(schema)}
        hollow = [f"not called: {label}" for label in sorted(set(operations) - set(self.statuses))]
        hollow += [f"only refused (401/403): {label} {dict(answers)}"
                   for label, answers in sorted(self.statuses.items())
                   if set(answers) <= {401, 403} and operations[label].definition.raw.get("security")]
        return self.failures + hollow


def run_schemathesis(schema) -> Run:
    """Every phase the config enables, as `st run` would: the failures found (each with how to reproduce it)
    and the statuses each operation answered.

    (Schemathesis's pytest integration, `schemathesis.pytest.from_fixture`, does not run under pytest 9.2: it
    renames test items through `Node._nodeid`, which pytest 9.2 no longer has. The engine is what the CLI
    runs, phases and checks alike.)"""
    run, labels = Run(), {op.label for op in _operations(schema)}
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for interaction in event.recorder.interactions.values():
                if interaction.response is not None and event.recorder.label in labels:
                    run.statuses[event.recorder.label][interaction.response.status_code] += 1
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    if check.failure_info is None:
                        continue
                    failure = check.failure_info.failure
                    interaction = event.recorder.interactions.get(case_id)
                    answer = interaction.response if interaction is not None else None
                    status = f"[{answer.status_code}] {answer.content[:500]!r}" if answer is not None else ""
                    label = failure.operation or event.recorder.label
                    run.failures.append(f"{failure.code} {failure.title} in {label} ({event.phase.value}): "
                                        f"{failure.message}\n    {status}\n    {check.failure_info.code_sample}")
        elif isinstance(event, events.NonFatalError):
            run.failures.append(f"error in {event.label} ({event.phase}): {event.info.title}: {event.info.message}")
        elif isinstance(event, events.FatalError):
            run.failures.append(f"fatal: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            run.failures += [f"after the run: {f.title}: {f.message}" for f in event.failures]
            if event.stop_reason is not StopReason.COMPLETED:
                run.failures.append(f"the run stopped early: {event.stop_reason.value}")
    run.failures = sorted(set(run.failures))
    return run


def _operations(schema) -> list:
    return [result.ok() for result in schema.get_all_operations()]


def check(schema) -> None:
    problems = run_schemathesis(schema).problems(schema)
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)


@pytest.mark.parametrize("service", SERVICES)
def test_openapi_conformance(stack, service):
    check(_schema(stack, service, examples=FAST_EXAMPLES, deep=False))


@pytest.fixture(scope="module")
async def agency_referral(stack):
    """A case of our own in AGENCY_PROVINCE, referred to AGENCY_UNIT among others: something for the agency
    operations' links to act on that no other test reads."""
    async with httpx.AsyncClient(timeout=30) as http:
        case = await report(http, stack, province_code=AGENCY_PROVINCE, narrative="schemathesis deep run")
        headers = {"Authorization": f"Bearer {stack.token('operator', sub='op-e2e')}"}

        async def referred():
            r = await http.get(f"{stack.url('referral')}/referrals", params={"case_id": case["id"]}, headers=headers)
            return r.json() if r.status_code == 200 and r.json() else None

        return await eventually(referred, 30)


@pytest.mark.long
@pytest.mark.parametrize("service", SERVICES)
def test_openapi_conformance_deep(stack, service, agency_referral):
    """More examples, values read from earlier answers fed into later requests, and stateful sequences that
    follow each document's links (create, then read, change and act on what was created)."""
    check(_schema(stack, service, examples=DEEP_EXAMPLES, deep=True))


def test_every_exclusion_names_a_documented_operation(stack):
    """An exclusion that no longer matches anything (a renamed path) would widen the run's blind spot unseen."""
    for service, method, path, _why in EXCLUDED + EXCLUDED_DEEP + EXCLUDED_FAST:
        document = httpx.get(f"{stack.url(service)}/openapi.json", timeout=30).json()
        assert any(re.search(path, p) and method.lower() in ops for p, ops in document["paths"].items()), (
            service, method, path)
