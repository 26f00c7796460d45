"""The event contract files, generated from the catalogue and the payload models so they cannot drift.

`python -m schemas` (`make schemas`) writes, relative to the repository root:

- `schemas/jsonschema/<ce_type>.json`: one JSON Schema (draft 2020-12) per event type;
- `schemas/asyncapi.yaml`: one AsyncAPI 3.0.0 document for every topic, its dead-letter topic,
  its messages, its producer and its consumers;
- `docs/events.md`: the same facts for people.

`python -m schemas --check` writes nothing: it lists the files that differ from what would be written.

Schemas are made in pydantic's *serialization* mode: they describe the JSON a producer puts on a topic
(`model.model_dump_json()`), which is what every consumer, in Python or not, reads. For the current
models the validation mode gives the same schemas; where they would differ (defaults, computed fields,
custom serializers), the bytes on the wire are what a contract has to describe.

Every output is built in a fixed order from ordered inputs, so the files are byte-for-byte stable.
"""
import json
from pathlib import Path

import yaml
from pydantic.json_schema import models_json_schema

from schemas.catalog import CATALOG, EventSpec, Topic

ROOT = Path(__file__).resolve().parent.parent
JSONSCHEMA_DIR = "schemas/jsonschema"
ASYNCAPI_PATH = "schemas/asyncapi.yaml"
DOCS_PATH = "docs/events.md"

MODE = "serialization"
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID_BASE = "https://hotline111.example/schemas/jsonschema/"
KAFKA_BINDING_VERSION = "0.4.0"
LOCAL_BROKER = "127.0.0.1:9092"

CASE_KEY = "case id"
KEY_RULE = (
    "The Kafka key of every event is its case id (a UUID as text), so all events of one case go to one "
    "partition and are read in order."
)
VERSION_RULE = (
    "Within a version (the `.vN` suffix of an event type and of its topic), payloads change by addition "
    "only: a new optional field, or a new enum value that consumers may ignore. Removing or renaming a "
    "field, changing its type or making it required is a new major version: a new `.vN+1` type on a new "
    "`.vN+1` topic, produced alongside the old one until its consumers have moved."
)
TRACEPARENT = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"

# (name, JSON Schema, always sent by producers, description): CloudEvents 1.0, Kafka binary mode.
ENVELOPE_HEADERS: tuple[tuple[str, dict, bool, str], ...] = (
    ("ce_specversion", {"type": "string", "const": "1.0"}, True, "CloudEvents specification version."),
    ("ce_id", {"type": "string", "format": "uuid"}, True, "Unique id of the event, a UUID."),
    ("ce_source", {"type": "string"}, True, "URI-reference of the service that produced the event."),
    ("ce_type", {"type": "string"}, True, "Event type; names the payload schema."),
    ("ce_time", {"type": "string", "format": "date-time"}, True, "When the event occurred (ISO 8601)."),
    ("ce_subject", {"type": "string"}, False, "What the event is about within its source, when set."),
    ("content-type", {"type": "string", "const": "application/json"}, True, "Media type of the value."),
    (
        "traceparent",
        {"type": "string", "pattern": TRACEPARENT},
        False,
        "W3C trace context of the span that produced the event.",
    ),
)

# Headers a consumer adds when it copies a record it cannot process to `<topic>.dlq` (runtime/dlq.py).
DLQ_HEADERS: tuple[tuple[str, dict, str], ...] = (
    ("dlq_reason", {"type": "string"},
     "Why: e.g. invalid-envelope, invalid-payload, unexpected-type (a type the topic may not carry), "
     "processing-failed."),
    ("dlq_error", {"type": "string", "maxLength": 1000}, "The error, cut to 1000 characters."),
    ("dlq_origin_topic", {"type": "string"}, "Topic the record came from."),
    ("dlq_origin_partition", {"type": "string", "pattern": "^[0-9]+$"}, "Its partition, in decimal."),
    ("dlq_origin_offset", {"type": "string", "pattern": "^[0-9]+$"}, "Its offset, in decimal."),
    ("dlq_consumer", {"type": "string"}, "The consumer that gave up on it."),
    ("dlq_attempts", {"type": "string", "pattern": "^[0-9]+$"}, "How many times it was tried, in decimal."),
    ("dlq_failed_at", {"type": "string", "format": "date-time"}, "When it was dead-lettered (ISO 8601)."),
    ("dlq_value_dropped", {"type": "string", "pattern": "^[0-9]+$"},
     "Only on a record too large to copy with these headers: the letter carries no value (and of the original "
     "headers only the CloudEvents attributes); this is the value's size in bytes. The record stays on the "
     "origin topic, at the partition and offset above."),
)
DLQ_OPTIONAL = frozenset({"dlq_value_dropped"})


# ---- JSON Schema ----------------------------------------------------------------------------------


def sorted_schema(node):
    """Sort the keys of every JSON Schema object, except the order of `properties` (the field order)."""
    if isinstance(node, list):
        return [sorted_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key in sorted(node):
        value = node[key]
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: sorted_schema(sub) for name, sub in value.items()}
        else:
            out[key] = sorted_schema(value)
    return out


def schema_id(spec: EventSpec) -> str:
    return f"{SCHEMA_ID_BASE}{spec.type}.json"


def event_json_schema(spec: EventSpec) -> dict:
    schema = spec.model.model_json_schema(mode=MODE)
    schema["$schema"] = DRAFT_2020_12
    schema["$id"] = schema_id(spec)
    return sorted_schema(schema)


def dump_json(data: dict) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


# ---- AsyncAPI 3.0.0 -------------------------------------------------------------------------------


def _headers_schema(ce_type: str) -> dict:
    properties = {}
    for name, schema, _, description in ENVELOPE_HEADERS:
        properties[name] = {**schema, "description": description}
    properties["ce_type"] = {"type": "string", "const": ce_type, "description": "Event type."}
    return {
        "type": "object",
        "description": "Kafka record headers: CloudEvents 1.0 attributes in binary mode, plus trace context.",
        "required": [name for name, _, required, _ in ENVELOPE_HEADERS if required],
        "properties": properties,
    }


def _dlq_headers_schema() -> dict:
    return {
        "type": "object",
        "description": "The original record's headers, unchanged, plus the dead-letter headers below.",
        "required": [name for name, _, _ in DLQ_HEADERS if name not in DLQ_OPTIONAL],
        "properties": {name: {**schema, "description": description} for name, schema, description in DLQ_HEADERS},
    }


def key_rule() -> str:
    """KEY_RULE, naming the topics keyed by something other than a case."""
    others = [f"`{t.name}` by {t.key}" for t in CATALOG.topics if t.key != CASE_KEY]
    if not others:
        return KEY_RULE
    return (KEY_RULE.replace("of every event", "of an event", 1) + " Topics about something other than a case "
            f"are keyed by that, for the same reason: {', '.join(others)}.")


def _key(topic: Topic) -> dict:
    if topic.key == CASE_KEY:
        return {"type": "string", "format": "uuid", "description": KEY_RULE}
    return {"type": "string", "description": f"The {topic.key}, so the events about one {topic.key} go to one "
                                             "partition and are read in order."}


def _event_message(spec: EventSpec, schema_name: str) -> dict:
    return {
        "name": spec.model.__name__,
        "title": spec.type,
        "summary": spec.summary,
        "description": (spec.model.__doc__ or spec.summary).strip(),
        "contentType": "application/json",
        "headers": _headers_schema(spec.type),
        "payload": {"$ref": f"#/components/schemas/{schema_name}"},
        "bindings": {"kafka": {"key": _key(CATALOG.topic(spec.topic)), "bindingVersion": KAFKA_BINDING_VERSION}},
    }


def _dead_letter_message() -> dict:
    return {
        "name": "DeadLetter",
        "title": "Dead letter",
        "summary": "A record a consumer could not process, copied as it came.",
        "description": (
            "The original record's key, value and headers, unchanged (the value may not be valid JSON), "
            "with the dead-letter headers added. It is kept for people to inspect and replay."
        ),
        "headers": _dlq_headers_schema(),
        "payload": {"description": "The original record's value, unchanged."},
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": "The original record's key, unchanged."},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def _channel(topic: Topic) -> dict:
    return {
        "address": topic.name,
        "title": topic.name,
        "description": topic.description,
        "messages": {e.type: {"$ref": f"#/components/messages/{e.type}"} for e in CATALOG.events_on(topic.name)},
        "bindings": {
            "kafka": {"topic": topic.name, "partitions": topic.partitions, "bindingVersion": KAFKA_BINDING_VERSION}
        },
    }


def _dlq_channel(topic: Topic) -> dict:
    return {
        "address": topic.dlq,
        "title": topic.dlq,
        "description": f"Dead letters of {topic.name}: records its consumers could not process.",
        "messages": {"deadLetter": {"$ref": "#/components/messages/deadLetter"}},
    }


def _operation(service: str, action: str, channel: str, messages: list[str], summary: str) -> dict:
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": summary,
        "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"} for name in messages],
        "tags": [{"name": service}],
    }


def operations() -> dict:
    ops = {}
    for topic in CATALOG.topics:
        types = [e.type for e in CATALOG.events_on(topic.name)]
        ops[f"{topic.producer}.send.{topic.name}"] = _operation(
            topic.producer, "send", topic.name, types, f"{topic.producer} produces to {topic.name}."
        )
        for consumer in topic.consumers:
            ops[f"{consumer}.receive.{topic.name}"] = _operation(
                consumer, "receive", topic.name, types, f"{consumer} consumes {topic.name}."
            )
        for reader in topic.readers:
            ops[f"{reader}.receive.{topic.name}"] = _operation(
                reader, "receive", topic.name, types,
                f"The agency system {reader} reads its own feed; its Kafka user may read no other topic.",
            )
        for consumer in topic.consumers:
            ops[f"{consumer}.send.{topic.dlq}"] = _operation(
                consumer, "send", topic.dlq, ["deadLetter"], f"{consumer} dead-letters what it cannot process."
            )
    return ops


def component_schemas() -> tuple[dict[str, str], dict]:
    """Payload schemas with `$ref`s into components/schemas; returns (ce_type -> schema name, schemas)."""
    inputs = [(e.model, MODE) for e in CATALOG.events]
    refs, top = models_json_schema(inputs, ref_template="#/components/schemas/{model}")
    names = {e.type: refs[(e.model, MODE)]["$ref"].rsplit("/", 1)[1] for e in CATALOG.events}
    return names, {name: sorted_schema(top["$defs"][name]) for name in sorted(top["$defs"])}


def asyncapi_document() -> dict:
    names, schemas = component_schemas()
    channels = {}
    for topic in CATALOG.topics:
        channels[topic.name] = _channel(topic)
        if topic.dead_letters:
            channels[topic.dlq] = _dlq_channel(topic)
    messages = {e.type: _event_message(e, names[e.type]) for e in CATALOG.events}
    messages["deadLetter"] = _dead_letter_message()
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Hotline 111 referral platform events",
            "version": "1.0.0",
            "description": (
                "Events between the intake, referral, notify and reporting services. Each is a CloudEvents "
                "1.0 event in Kafka binary mode: attributes as `ce_*` headers, the payload as the JSON "
                f"value.\n\n{key_rule()}\n\n{VERSION_RULE}\n\nGenerated by `python -m schemas`: do not edit.\n"
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": LOCAL_BROKER,
                "protocol": "kafka",
                "description": "The local development broker (devstack).",
            }
        },
        "channels": channels,
        "operations": operations(),
        "components": {"schemas": schemas, "messages": messages},
    }


class _Dumper(yaml.SafeDumper):
    """Block style, no anchors or aliases, multi-line strings as literal blocks."""

    def ignore_aliases(self, data):
        return True


def _represent_str(dumper: yaml.SafeDumper, text: str):
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(data: dict) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000, default_flow_style=False)


# ---- docs/events.md -------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _field_type(schema: dict) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[1]
    if "anyOf" in schema:
        return " or ".join(_field_type(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list of {_field_type(schema.get('items', {}))}"
    kind = schema.get("format") or schema.get("type", "any")
    if "pattern" in schema:
        kind += f" `{schema['pattern']}`"
    if "minimum" in schema:
        kind += f" >= {schema['minimum']}"
    return kind


def _field_rows(schema: dict) -> list[str]:
    required = set(schema.get("required", []))
    rows = ["| field | type | required | description |", "| --- | --- | --- | --- |"]
    for name, prop in schema.get("properties", {}).items():
        description = prop.get("description", "")
        if "anyOf" in prop:
            description = description or next((s.get("description", "") for s in prop["anyOf"]), "")
        rows.append(
            f"| `{name}` | {_cell(_field_type(prop))} | {'yes' if name in required else 'no'} | {_cell(description)} |"
        )
    return rows


def _defs_lines(schema: dict) -> list[str]:
    """Nested objects as their own field tables, then enums as one line each."""
    lines = []
    defs = schema.get("$defs", {})
    for name, definition in defs.items():
        if "properties" in definition:
            lines += ["", f"`{name}`: {_cell(definition.get('description', ''))}", "", *_field_rows(definition)]
    enums = [(name, d) for name, d in defs.items() if "enum" in d]
    if enums:
        lines.append("")
    for name, definition in enums:
        values = ", ".join(f"`{v}`" for v in definition["enum"])
        lines.append(f"- `{name}`: {values}. {_cell(definition.get('description', ''))}".rstrip())
    return lines


def events_markdown() -> str:
    lines = [
        "# Events",
        "",
        "<!-- Generated by `python -m schemas` (`make schemas`) from schemas/catalog.py and schemas/events/."
        " Do not edit. -->",
        "",
        "The services talk only through Kafka topics. Each record is a CloudEvents 1.0 event in Kafka binary "
        "mode: the attributes are `ce_*` headers, the payload is the JSON value. Machine-readable forms: "
        f"[`{ASYNCAPI_PATH}`](../{ASYNCAPI_PATH}) (AsyncAPI 3.0.0) and one JSON Schema (draft 2020-12) per "
        f"event type in [`{JSONSCHEMA_DIR}/`](../{JSONSCHEMA_DIR}/).",
        "",
        "## Rules",
        "",
        f"- **Key.** {key_rule()}",
        f"- **Addition only within a version.** {VERSION_RULE}",
        "- **Dead letters.** A consumer that cannot process a record copies it, unchanged, to `<topic>.dlq` with "
        "`dlq_*` headers saying why, then moves on.",
        "- **Agency feeds.** `referral.feed.<agency>.v1` carries, for one agency organisation's own system, the "
        "whole current state of each of its referrals (upsert by `referral_id`), with only the fields that "
        "organisation may see: its payload model is the allowlist. Each is read by that agency's Kafka user alone "
        "(schemas/feeds.py).",
        "",
        "## Topics",
        "",
        "| topic | partitions | producer | consumers | dead letters | description |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for t in CATALOG.topics:
        consumers = ", ".join(t.consumers + t.readers) or "none yet"
        dlq = f"`{t.dlq}`" if t.dead_letters else "none: read outside the platform"
        lines.append(
            f"| `{t.name}` | {t.partitions} | {t.producer} | {consumers} | {dlq} | {_cell(t.description)} |"
        )
    lines += [
        "",
        "## Envelope headers",
        "",
        "| header | required | value |",
        "| --- | --- | --- |",
    ]
    for name, schema, required, description in ENVELOPE_HEADERS:
        value = f"`{schema['const']}`" if "const" in schema else schema.get("format", "text")
        lines.append(f"| `{name}` | {'yes' if required else 'no'} | {value}: {_cell(description)} |")
    lines += ["", "## Event types", "", "| type | topic | summary | schema |", "| --- | --- | --- | --- |"]
    for e in CATALOG.events:
        path = f"{JSONSCHEMA_DIR}/{e.type}.json"
        lines.append(f"| `{e.type}` | `{e.topic}` | {_cell(e.summary)} | [{e.model.__name__}](../{path}) |")
    for e in CATALOG.events:
        schema = event_json_schema(e)
        lines += ["", f"### `{e.type}`", "", _cell(schema.get("description", e.summary)), ""]
        lines += _field_rows(schema)
        lines += _defs_lines(schema)
    return "\n".join(lines) + "\n"


# ---- write and check ------------------------------------------------------------------------------


def outputs() -> dict[str, str]:
    """Every generated file: path relative to the repository root -> its exact text."""
    files = {f"{JSONSCHEMA_DIR}/{e.type}.json": dump_json(event_json_schema(e)) for e in CATALOG.events}
    files[ASYNCAPI_PATH] = dump_yaml(asyncapi_document())
    files[DOCS_PATH] = events_markdown()
    return files


def _stale(root: Path, files: dict[str, str]) -> list[str]:
    """JSON Schema files on disk that no event type produces any more."""
    found = sorted((root / JSONSCHEMA_DIR).glob("*.json"))
    return [rel for rel in (p.relative_to(root).as_posix() for p in found) if rel not in files]


def check(root: Path = ROOT) -> list[str]:
    """Paths that differ from, are missing from, or are stale compared with what would be written."""
    files = outputs()
    drifted = []
    for rel, text in files.items():
        path = root / rel
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            drifted.append(rel)
    return drifted + _stale(root, files)


def write(root: Path = ROOT) -> tuple[list[str], list[str]]:
    """Write every output that changed and remove stale schema files; returns (written, removed)."""
    files = outputs()
    written = []
    for rel, text in files.items():
        path = root / rel
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
        written.append(rel)
    removed = _stale(root, files)
    for rel in removed:
        (root / rel).unlink()
    return written, removed
