"""The compatibility checker on small schemas: each kind of break is caught where it happens,
and what the policy allows (optional fields on open objects, new event types, annotations)
passes."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from casewire_dev.schema_compat import Break, UnsupportedSchemaError, breaking_changes

BASELINE: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "x-casewire-topic": "casewire.case-events.v1",
    "x-cloudevents-types": ["casewire.case.created", "casewire.case.assigned"],
    "type": "object",
    "title": "EventData",
    "properties": {
        "case": {"$ref": "#/$defs/Case"},
        "note": {"anyOf": [{"type": "string", "maxLength": 200}, {"type": "null"}]},
        "count": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["case", "count"],
    "$defs": {
        "Case": {
            "type": "object",
            "title": "Case",
            "properties": {
                "id": {"type": "string"},
                "status": {"enum": ["queued", "assigned", "resolved"], "type": "string"},
            },
            "required": ["id", "status"],
        },
        "Closed": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"id": {"type": "string"}},
        },
    },
}


def changed(edit: Any) -> dict[str, Any]:
    schema = copy.deepcopy(BASELINE)
    edit(schema)
    return schema


def kinds(current: dict[str, Any], baseline: dict[str, Any] = BASELINE) -> list[tuple[str, str]]:
    return [(item.path, item.kind) for item in breaking_changes(baseline, current)]


def test_an_identical_schema_breaks_nothing() -> None:
    assert breaking_changes(BASELINE, copy.deepcopy(BASELINE)) == []


def test_an_optional_field_added_to_an_open_object_passes() -> None:
    def add(schema: dict[str, Any]) -> None:
        schema["properties"]["priority"] = {"type": "string"}
        schema["$defs"]["Case"]["properties"]["team"] = {"anyOf": [{"type": "string"}, {}]}

    assert kinds(changed(add)) == []


def test_annotations_and_new_event_types_pass() -> None:
    def annotate(schema: dict[str, Any]) -> None:
        schema["properties"]["count"]["description"] = "How many."
        schema["properties"]["count"]["title"] = "Count"
        schema["properties"]["note"]["default"] = None
        schema["x-cloudevents-types"].append("casewire.case.merged")

    assert kinds(changed(annotate)) == []


def test_a_removed_field_is_caught_even_when_it_was_optional() -> None:
    assert kinds(changed(lambda s: s["properties"].pop("note"))) == [("note", "property_removed")]
    assert kinds(changed(lambda s: s["$defs"]["Case"]["properties"].pop("status"))) == [
        ("case.status", "property_removed")
    ]


def test_a_field_newly_required_is_caught() -> None:
    assert kinds(changed(lambda s: s["required"].append("note"))) == [("note", "newly_required")]


def test_a_new_field_that_is_required_at_once_is_caught() -> None:
    def add_required(schema: dict[str, Any]) -> None:
        schema["properties"]["team"] = {"type": "string"}
        schema["required"].append("team")

    assert kinds(changed(add_required)) == [("team", "newly_required")]


def test_a_field_no_longer_required_is_caught() -> None:
    assert kinds(changed(lambda s: s["required"].remove("count"))) == [
        ("count", "no_longer_required")
    ]


def test_a_type_narrowed_or_changed_is_caught() -> None:
    def not_nullable(schema: dict[str, Any]) -> None:
        schema["properties"]["note"] = {"type": "string", "maxLength": 200}

    assert kinds(changed(not_nullable)) == [("note", "type_changed")]
    breaks = breaking_changes(
        BASELINE, changed(lambda s: s["properties"]["count"].update(type="number"))
    )
    assert breaks == [Break("count", "type_changed", "integer -> number")]
    assert kinds(changed(lambda s: s["properties"]["tags"]["items"].update(type="integer"))) == [
        ("tags[]", "type_changed")
    ]


def test_a_type_widened_is_caught_too() -> None:
    def nullable(schema: dict[str, Any]) -> None:
        schema["properties"]["count"] = {
            "anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}]
        }

    assert kinds(changed(nullable)) == [("count", "type_changed")]


def test_an_enum_value_removed_is_caught_inside_a_referenced_model() -> None:
    def remove(schema: dict[str, Any]) -> None:
        schema["$defs"]["Case"]["properties"]["status"]["enum"].remove("assigned")

    assert breaking_changes(BASELINE, changed(remove)) == [
        Break("case.status", "enum_value_removed", "'assigned'")
    ]


def test_an_enum_value_added_is_a_break_for_strict_consumers() -> None:
    def add(schema: dict[str, Any]) -> None:
        schema["$defs"]["Case"]["properties"]["status"]["enum"].append("escalated")

    assert kinds(changed(add)) == [("case.status", "enum_value_added")]


def test_additional_properties_tightened_or_loosened_is_caught() -> None:
    closed = changed(lambda s: s.update(additionalProperties=False))
    assert kinds(closed) == [("(root)", "additional_properties_tightened")]
    assert kinds(BASELINE, closed) == [("(root)", "additional_properties_loosened")]


def test_a_field_added_to_a_closed_object_is_caught() -> None:
    closed = {"$ref": "#/$defs/Closed"}
    baseline = changed(lambda s: s["properties"].update(extra=closed))

    def add(schema: dict[str, Any]) -> None:
        schema["properties"]["extra"] = closed
        schema["$defs"]["Closed"]["properties"]["name"] = {"type": "string"}

    assert kinds(changed(add), baseline) == [("extra.name", "property_added_to_closed_object")]


def test_a_changed_constraint_is_caught_in_either_direction() -> None:
    def shorter(schema: dict[str, Any]) -> None:
        schema["properties"]["note"]["anyOf"][0]["maxLength"] = 100

    def longer(schema: dict[str, Any]) -> None:
        schema["properties"]["note"]["anyOf"][0]["maxLength"] = 400

    assert breaking_changes(BASELINE, changed(shorter)) == [
        Break("note", "constraint_changed", "maxLength 200 -> 100")
    ]
    assert kinds(changed(longer)) == [("note", "constraint_changed")]


def test_a_removed_event_type_or_a_moved_topic_is_caught() -> None:
    assert kinds(changed(lambda s: s["x-cloudevents-types"].remove("casewire.case.assigned"))) == [
        ("(root)", "event_type_removed")
    ]
    assert kinds(changed(lambda s: s.update({"x-casewire-topic": "casewire.case-events.v2"}))) == [
        ("(root)", "topic_changed")
    ]


def test_every_break_of_one_change_is_reported() -> None:
    def many(schema: dict[str, Any]) -> None:
        schema["properties"].pop("tags")
        schema["required"].append("note")
        schema["$defs"]["Case"]["properties"]["status"]["enum"].remove("queued")

    assert sorted(kinds(changed(many))) == [
        ("case.status", "enum_value_removed"),
        ("note", "newly_required"),
        ("tags", "property_removed"),
    ]


def test_the_values_of_a_mapping_and_the_items_of_a_tuple_keep_their_contract() -> None:
    def with_collections(values: str, second: str) -> dict[str, Any]:
        def add(schema: dict[str, Any]) -> None:
            schema["properties"]["counts"] = {
                "type": "object",
                "additionalProperties": {"type": values},
            }
            schema["properties"]["pair"] = {
                "type": "array",
                "prefixItems": [{"type": "string"}, {"type": second}],
            }

        return changed(add)

    baseline = with_collections("integer", "integer")
    assert kinds(with_collections("integer", "integer"), baseline) == []
    assert kinds(with_collections("string", "number"), baseline) == [
        ("counts.*", "type_changed"),
        ("pair[1]", "type_changed"),
    ]


def test_a_recursive_model_is_compared_without_looping() -> None:
    tree: dict[str, Any] = {
        "$ref": "#/$defs/Node",
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}},
            }
        },
    }
    assert breaking_changes(tree, copy.deepcopy(tree)) == []
    pruned = copy.deepcopy(tree)
    pruned["$defs"]["Node"]["properties"]["name"] = {"type": "string"}
    pruned["$defs"]["Node"]["required"] = ["name"]
    assert kinds(pruned, tree) == [("name", "newly_required")]


def test_a_reference_outside_the_document_is_refused_rather_than_guessed() -> None:
    remote = changed(lambda s: s["properties"].update(case={"$ref": "https://example.org/c"}))
    with pytest.raises(UnsupportedSchemaError, match="only local references"):
        breaking_changes(remote, remote)
