"""The generated event contract files: in step with the models, and valid as what they claim to be."""
import json
import re
import types
import typing
from datetime import UTC, datetime, timedelta, timezone
from uuid import uuid4

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from pydantic import AwareDatetime, BaseModel
from pydantic.fields import FieldInfo

from schemas import generate
from schemas.__main__ import main
from schemas.catalog import CATALOG, TYPE_PREFIX, event_spec_for_model, event_spec_for_type

ROOT = generate.ROOT
EVENTS = CATALOG.events
TOPICS = {t.name: t for t in CATALOG.topics}


def _ids(spec):
    return spec.type


def _load_schema(spec) -> dict:
    return json.loads((ROOT / generate.JSONSCHEMA_DIR / f"{spec.type}.json").read_text(encoding="utf-8"))


# ---- drift ----------------------------------------------------------------------------------------


def test_committed_files_match_the_models():
    drifted = generate.check(ROOT)
    assert not drifted, (
        "Generated event files differ from schemas/catalog.py and schemas/events/: run `make schemas` "
        "(python -m schemas) and commit the result. Drifted: " + ", ".join(drifted)
    )


def test_check_reports_drift_and_write_repairs_it(tmp_path):
    expected = list(generate.outputs())
    assert generate.check(tmp_path) == expected  # nothing written yet: every file is missing
    assert main(["--check", "--root", str(tmp_path)]) == 1
    assert not (tmp_path / generate.ASYNCAPI_PATH).exists()  # --check writes nothing

    assert generate.write(tmp_path) == (expected, [])
    assert generate.check(tmp_path) == []
    assert main(["--check", "--root", str(tmp_path)]) == 0
    assert generate.write(tmp_path) == ([], [])  # nothing to do the second time

    stale = f"{generate.JSONSCHEMA_DIR}/{TYPE_PREFIX}.gone.v1.json"
    (tmp_path / stale).write_text("{}\n")
    docs = tmp_path / generate.DOCS_PATH
    docs.write_text(docs.read_text() + "hand edit\n")
    assert generate.check(tmp_path) == [generate.DOCS_PATH, stale]
    assert (tmp_path / stale).exists()

    assert generate.write(tmp_path) == ([generate.DOCS_PATH], [stale])
    assert not (tmp_path / stale).exists()
    assert generate.check(tmp_path) == []


def test_generated_text_is_stable_and_ends_with_a_newline():
    first, second = generate.outputs(), generate.outputs()
    assert first == second
    for rel, text in first.items():
        assert text.endswith("\n") and not text.endswith("\n\n"), rel


# ---- catalogue ------------------------------------------------------------------------------------


def _major(name: str) -> str | None:
    found = re.search(r"\.v(\d+)$", name)
    return found.group(1) if found else None


def test_catalogue_types_topics_and_models_are_unique():
    types_ = [e.type for e in EVENTS]
    assert len(set(types_)) == len(types_), "duplicate event types"
    assert len(TOPICS) == len(CATALOG.topics), "duplicate topics"
    assert len({e.model for e in EVENTS}) == len(EVENTS), "one model serves two event types"
    for topic in CATALOG.topics:
        assert _major(topic.name), f"topic {topic.name} has no .vN version suffix"
        assert CATALOG.events_on(topic.name), f"topic {topic.name} carries no event type"


@pytest.mark.parametrize("spec", EVENTS, ids=_ids)
def test_catalogue_event_is_on_a_known_topic_of_the_same_major_version(spec):
    assert spec.topic in TOPICS, f"{spec.type} is on unknown topic {spec.topic}"
    assert spec.type.startswith(f"{TYPE_PREFIX}."), spec.type
    assert _major(spec.type), f"{spec.type} does not end with .vN"
    assert _major(spec.type) == _major(spec.topic), f"{spec.type} is not the major version of {spec.topic}"
    assert event_spec_for_type(spec.type) is spec
    assert event_spec_for_model(spec.model) is spec


# ---- JSON Schema files ----------------------------------------------------------------------------

FORMATS = FormatChecker()  # checks "uuid"; "date-time" needs rfc3339-validator, so it is checked here


@FORMATS.checks("date-time", raises=ValueError)
def _is_rfc3339_date_time(value) -> bool:
    if not isinstance(value, str):
        return True
    return "T" in value.upper() and datetime.fromisoformat(value).tzinfo is not None


def _validator(spec) -> Draft202012Validator:
    return Draft202012Validator(_load_schema(spec), format_checker=FORMATS)


@pytest.mark.parametrize("spec", EVENTS, ids=_ids)
def test_json_schema_file_is_a_valid_2020_12_schema(spec):
    schema = _load_schema(spec)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == generate.schema_id(spec)
    assert schema["title"] == spec.model.__name__
    assert schema["type"] == "object"


def test_no_json_schema_file_without_an_event_type():
    on_disk = {p.name for p in (ROOT / generate.JSONSCHEMA_DIR).glob("*.json")}
    assert on_disk == {f"{e.type}.json" for e in EVENTS}


# Hypothesis cannot read pydantic's `pattern` metadata, so payloads are built field by field.
AWARE_DATETIMES = st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=7))]))


def _strategy(annotation, metadata=()) -> st.SearchStrategy:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        inner = [m for extra in extras for m in (extra.metadata if isinstance(extra, FieldInfo) else [extra])]
        return _strategy(base, [*metadata, *inner])
    if origin in (typing.Union, types.UnionType):
        return st.one_of([_strategy(arg, metadata) for arg in typing.get_args(annotation)])
    if annotation is type(None):
        return st.none()
    pattern = next((m.pattern for m in metadata if getattr(m, "pattern", None)), None)
    if pattern:
        return st.from_regex(pattern, fullmatch=True)
    if origin is list:
        return st.lists(_strategy(typing.get_args(annotation)[0]), max_size=3)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return payloads(annotation)
    if annotation is datetime or annotation is AwareDatetime:
        return AWARE_DATETIMES  # producers stamp aware times; a naive one is not an RFC 3339 date-time
    if metadata:
        return st.from_type(typing.Annotated[(annotation, *metadata)])  # e.g. annotated_types.Ge(0)
    return st.from_type(annotation)


def payloads(model: type[BaseModel]) -> st.SearchStrategy:
    fields = {name: _strategy(f.annotation, f.metadata) for name, f in model.model_fields.items()}
    return st.builds(model, **fields)


@pytest.mark.parametrize("spec", EVENTS, ids=_ids)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_model_serialised_json_passes_the_generated_schema(spec, data):
    instance = data.draw(payloads(spec.model))
    value = json.loads(instance.model_dump_json())
    _validator(spec).validate(value)
    assert spec.model.model_validate(value) == instance


@pytest.mark.parametrize("spec", EVENTS, ids=_ids)
def test_generated_schema_rejects_a_payload_missing_a_required_field(spec):
    required = _load_schema(spec)["required"]
    assert required
    with pytest.raises(ValidationError):
        _validator(spec).validate({})


# ---- AsyncAPI 3.0.0 -------------------------------------------------------------------------------

TOP_LEVEL = ("asyncapi", "id", "info", "servers", "defaultContentType", "channels", "operations", "components")


@pytest.fixture(scope="module")
def doc() -> dict:
    return yaml.safe_load((ROOT / generate.ASYNCAPI_PATH).read_text(encoding="utf-8"))


def _resolve(doc: dict, ref: str):
    assert ref.startswith("#/"), f"only local refs are used: {ref}"
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"$ref {ref} does not resolve"
        node = node[part]
    return node


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_asyncapi_top_level(doc):
    assert doc["asyncapi"] == "3.0.0"
    assert set(doc) <= set(TOP_LEVEL), set(doc) - set(TOP_LEVEL)
    assert doc["info"]["title"] == "Hotline 111 referral platform events"
    assert doc["info"]["version"] == "1.0.0"
    assert doc["servers"]["local"] == {**doc["servers"]["local"], "host": "127.0.0.1:9092", "protocol": "kafka"}
    for key in ("channels", "operations", "components"):
        assert doc[key], f"{key} is empty"


def test_every_asyncapi_ref_resolves(doc):
    refs = list(_refs(doc))
    assert refs
    for ref in refs:
        _resolve(doc, ref)


def test_every_operation_refers_to_a_channel_and_only_its_messages(doc):
    for name, op in doc["operations"].items():
        assert op["action"] in ("send", "receive"), name
        channel_ref = op["channel"]["$ref"]
        assert channel_ref.startswith("#/channels/"), name
        _resolve(doc, channel_ref)
        assert op["messages"], f"{name} names no message"
        for message in op["messages"]:
            assert message["$ref"].startswith(f"{channel_ref}/messages/"), f"{name}: {message['$ref']}"
            _resolve(doc, message["$ref"])


def test_a_topic_without_dead_letters_is_consumed_by_no_service():
    for t in CATALOG.topics:
        assert t.dead_letters or not t.consumers, f"{t.name}: our consumers need its dead-letter topic"


def test_channels_are_exactly_the_catalogue_topics_and_their_dead_letter_topics(doc):
    expected = {t.name for t in CATALOG.topics} | {t.dlq for t in CATALOG.topics if t.dead_letters}
    assert {c["address"] for c in doc["channels"].values()} == expected
    for key, channel in doc["channels"].items():
        assert key == channel["address"]
        assert channel["messages"], f"channel {key} has no message"


def test_operations_are_the_catalogue_producers_and_consumers(doc):
    expected = {}
    for t in CATALOG.topics:
        expected[f"{t.producer}.send.{t.name}"] = ("send", t.name)
        for consumer in t.consumers:
            expected[f"{consumer}.receive.{t.name}"] = ("receive", t.name)
            expected[f"{consumer}.send.{t.dlq}"] = ("send", t.dlq)
        for reader in t.readers:  # an agency system reading its own feed
            expected[f"{reader}.receive.{t.name}"] = ("receive", t.name)
    actual = {}
    for name, op in doc["operations"].items():
        actual[name] = (op["action"], op["channel"]["$ref"].removeprefix("#/channels/"))
    assert actual == expected


@pytest.mark.parametrize("spec", EVENTS, ids=_ids)
def test_every_catalogue_event_is_a_message_on_its_topic(doc, spec):
    channel = doc["channels"][spec.topic]
    message = _resolve(doc, channel["messages"][spec.type]["$ref"])
    assert message["contentType"] == "application/json"
    headers = message["headers"]
    assert set(headers["properties"]) == {name for name, *_ in generate.ENVELOPE_HEADERS}
    assert headers["properties"]["ce_type"]["const"] == spec.type
    assert {"ce_id", "ce_source", "ce_type", "ce_specversion"} <= set(headers["required"])
    assert message["bindings"]["kafka"]["key"]["type"] == "string"
    payload = _resolve(doc, message["payload"]["$ref"])
    assert payload["title"] == spec.model.__name__
    assert list(payload["properties"]) == list(spec.model.model_fields)

    producer = doc["operations"][f"{TOPICS[spec.topic].producer}.send.{spec.topic}"]
    assert {"$ref": f"#/channels/{spec.topic}/messages/{spec.type}"} in producer["messages"]


def test_documented_headers_match_the_runtime():
    from runtime.cloudevents import Envelope
    from runtime.dlq import DLQ_HEADERS

    def sent(subject):
        envelope = Envelope(id=uuid4(), source="/test", type="t", time=datetime.now(UTC), subject=subject, data=b"{}")
        return {name for name, _ in envelope.headers()}

    documented = {name for name, *_ in generate.ENVELOPE_HEADERS}
    always = {name for name, _, required, _ in generate.ENVELOPE_HEADERS if required}
    assert sent(None) == always
    assert sent("case") <= documented
    assert tuple(name for name, *_ in generate.DLQ_HEADERS) == DLQ_HEADERS


def test_docs_page_names_every_topic_event_and_header():
    page = (ROOT / generate.DOCS_PATH).read_text(encoding="utf-8")
    for t in CATALOG.topics:
        assert f"`{t.name}`" in page and (f"`{t.dlq}`" in page or not t.dead_letters)
    for e in EVENTS:
        assert f"`{e.type}`" in page
    for name, *_ in generate.ENVELOPE_HEADERS:
        assert f"`{name}`" in page
