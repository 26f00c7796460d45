"""Event payload models: the single source for JSON Schema and AsyncAPI documents.

Within a version (the `.v1` suffix of a type and topic), change models by addition only.
"""
from schemas.catalog import CATALOG, EventSpec, Topic, event_spec_for_model, event_spec_for_type

__all__ = ["CATALOG", "EventSpec", "Topic", "event_spec_for_model", "event_spec_for_type"]
