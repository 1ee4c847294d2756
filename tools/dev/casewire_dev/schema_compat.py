"""Does a payload schema still serve the consumers of its baseline? A structural comparison of
two JSON Schemas (draft 2020-12, as pydantic writes them), with Casewire's compatibility policy.

Kafka topics keep old records and consumers upgrade at their own pace, so a change must keep
both directions working: consumers built on the baseline read what the current code writes,
and consumers built on the current schema read records written under the baseline. Allowed:
a new optional property on an object that admits unknown properties, a new CloudEvents type,
and annotation changes (title, description, default, examples). Everything else that changes
which documents are valid is a break: a removed property, a property newly required or no longer
required, a changed set of types, an enum value removed or added, a changed constraint, an object
closed to unknown properties, a property added to an object that was already closed.

Off-the-shelf checkers (jsoncompat) decide a formal subset relation: in both directions they
refuse the additive optional properties that this policy allows, in one direction they accept
removals and newly required properties, and they do not say where or why, hence this module.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

Schema = Mapping[str, Any]

# Keywords that only describe: a change to them cannot break anyone.
ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly"}
)
# Keywords that decide which values are valid, compared as plain values.
CONSTRAINTS = (
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
)
# Extensions the contract generator writes at the root of each payload schema.
TOPIC_KEY = "x-casewire-topic"
EVENT_TYPES_KEY = "x-cloudevents-types"


@dataclass(frozen=True)
class Break:
    """One way in which the current schema breaks consumers of the baseline."""

    path: str  # where, as `field.sub_field` (`[]` for array items), `(root)` for the whole
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.kind}: {self.detail}"


class UnsupportedSchemaError(ValueError):
    """The schema uses a construct this checker cannot compare (say so rather than guess)."""


def breaking_changes(baseline: Schema, current: Schema) -> list[Break]:
    """Every break of `baseline`'s consumers by `current`; empty when the change is compatible."""
    breaks = list(_root_changes(baseline, current))
    comparison = _Comparison(baseline, current)
    breaks.extend(comparison.compare(baseline, current, ""))
    return breaks


def _root_changes(baseline: Schema, current: Schema) -> Iterator[Break]:
    if baseline.get(TOPIC_KEY) != current.get(TOPIC_KEY):
        yield Break(
            "(root)",
            "topic_changed",
            f"{baseline.get(TOPIC_KEY)!r} -> {current.get(TOPIC_KEY)!r}: a new topic is a new "
            "contract version",
        )
    removed = sorted(set(baseline.get(EVENT_TYPES_KEY, ())) - set(current.get(EVENT_TYPES_KEY, ())))
    for event_type in removed:
        yield Break("(root)", "event_type_removed", f"{event_type!r} is no longer published")


class _Comparison:
    def __init__(self, baseline_document: Schema, current_document: Schema) -> None:
        self._documents = (baseline_document, current_document)
        self._visited: set[tuple[str, str, str]] = set()

    def compare(self, baseline: Schema, current: Schema, path: str) -> Iterator[Break]:
        baseline_branches = self._branches(baseline, self._documents[0])
        current_branches = self._branches(current, self._documents[1])
        baseline_types = _types_of(baseline_branches)
        current_types = _types_of(current_branches)
        if baseline_types != current_types:
            yield Break(
                _shown(path),
                "type_changed",
                f"{_listed(baseline_types)} -> {_listed(current_types)}",
            )
        for json_type in sorted(baseline_types & current_types):
            old = [branch for branch in baseline_branches if json_type in _types_of([branch])]
            new = [branch for branch in current_branches if json_type in _types_of([branch])]
            for old_branch, new_branch in _paired(old, new):
                yield from self._compare_branch(old_branch, new_branch, json_type, path)

    def _compare_branch(
        self, baseline: Schema, current: Schema, json_type: str, path: str
    ) -> Iterator[Break]:
        # A recursive model refers to itself: compare each pair of definitions once.
        visit = (json_type, _identity(baseline), _identity(current))
        if visit[1] and visit[2]:
            if visit in self._visited:
                return
            self._visited.add(visit)
        yield from _enum_changes(baseline, current, json_type, path)
        for keyword in CONSTRAINTS:
            if baseline.get(keyword) != current.get(keyword):
                yield Break(
                    _shown(path),
                    "constraint_changed",
                    f"{keyword} {baseline.get(keyword)!r} -> {current.get(keyword)!r}",
                )
        if json_type == "object":
            yield from self._compare_object(baseline, current, path)
        elif json_type == "array":
            yield from self._compare_array(baseline, current, path)

    def _compare_array(self, baseline: Schema, current: Schema, path: str) -> Iterator[Break]:
        old_prefix = baseline.get("prefixItems", [])
        new_prefix = current.get("prefixItems", [])
        if len(old_prefix) != len(new_prefix):
            yield Break(
                _shown(path),
                "constraint_changed",
                f"tuple of {len(old_prefix)} items -> tuple of {len(new_prefix)} items",
            )
        for index, (old_item, new_item) in enumerate(zip(old_prefix, new_prefix, strict=False)):
            yield from self.compare(old_item, new_item, f"{path}[{index}]")
        if "items" in baseline or "items" in current:
            yield from self.compare(
                baseline.get("items", {}), current.get("items", {}), f"{path}[]"
            )

    def _compare_object(self, baseline: Schema, current: Schema, path: str) -> Iterator[Break]:
        old_properties: Mapping[str, Schema] = baseline.get("properties", {})
        new_properties: Mapping[str, Schema] = current.get("properties", {})
        old_required = set(baseline.get("required", ()))
        new_required = set(current.get("required", ()))
        old_closed = baseline.get("additionalProperties") is False
        new_closed = current.get("additionalProperties") is False
        if not old_closed and new_closed:
            yield Break(
                _shown(path),
                "additional_properties_tightened",
                "unknown properties were allowed and are now forbidden",
            )
        if old_closed and not new_closed:
            yield Break(
                _shown(path),
                "additional_properties_loosened",
                "consumers of the baseline reject the unknown properties now allowed",
            )
        old_values = baseline.get("additionalProperties")
        new_values = current.get("additionalProperties")
        if isinstance(old_values, Mapping) and isinstance(new_values, Mapping):
            # A mapping (`dict[str, X]`): its values keep their contract like fields do.
            yield from self.compare(old_values, new_values, f"{path}.*" if path else "*")
        for name, old_schema in old_properties.items():
            field_path = f"{path}.{name}" if path else name
            if name not in new_properties:
                yield Break(field_path, "property_removed", "consumers may read it")
                continue
            if name in new_required and name not in old_required:
                yield Break(field_path, "newly_required", "records written before may lack it")
            if name in old_required and name not in new_required:
                yield Break(field_path, "no_longer_required", "consumers may rely on it")
            yield from self.compare(old_schema, new_properties[name], field_path)
        for name in new_properties.keys() - old_properties.keys():
            field_path = f"{path}.{name}" if path else name
            if old_closed:
                yield Break(
                    field_path,
                    "property_added_to_closed_object",
                    "consumers of the baseline reject unknown properties",
                )
            elif name in new_required:
                yield Break(field_path, "newly_required", "records written before lack it")

    def _branches(self, schema: Schema, document: Schema) -> list[Schema]:
        """The alternatives a schema allows (`anyOf`/`oneOf` flattened), `$ref`s resolved."""
        schema = self._resolved(schema, document)
        for keyword in ("anyOf", "oneOf"):
            if keyword in schema:
                return [
                    branch
                    for alternative in schema[keyword]
                    for branch in self._branches(alternative, document)
                ]
        if "allOf" in schema:
            if len(schema["allOf"]) != 1:
                raise UnsupportedSchemaError("allOf with more than one schema")
            return self._branches(schema["allOf"][0], document)
        return [schema]

    def _resolved(self, schema: Schema, document: Schema) -> Schema:
        seen: set[str] = set()
        while "$ref" in schema:
            reference = schema["$ref"]
            if not isinstance(reference, str) or not reference.startswith("#/"):
                raise UnsupportedSchemaError(f"only local references are compared: {reference!r}")
            if reference in seen:
                raise UnsupportedSchemaError(f"reference cycle at {reference!r}")
            seen.add(reference)
            target: Any = document
            for part in reference[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, Mapping) or part not in target:
                    raise UnsupportedSchemaError(f"unresolvable reference {reference!r}")
                target = target[part]
            # Keywords beside a `$ref` (pydantic puts descriptions there) apply as well.
            siblings = {key: value for key, value in schema.items() if key != "$ref"}
            schema = {**target, **siblings, "x-resolved-from": reference}
        return schema


def _enum_changes(baseline: Schema, current: Schema, json_type: str, path: str) -> Iterator[Break]:
    old_values = _enumerated(baseline, json_type)
    new_values = _enumerated(current, json_type)
    if old_values is None and new_values is None:
        return
    if old_values is None or new_values is None:
        yield Break(
            _shown(path),
            "constraint_changed",
            "a free value became an enumeration"
            if old_values is None
            else "an enumeration became a free value",
        )
        return
    for value in sorted(old_values - new_values, key=repr):
        yield Break(_shown(path), "enum_value_removed", f"{value!r}")
    for value in sorted(new_values - old_values, key=repr):
        yield Break(
            _shown(path),
            "enum_value_added",
            f"{value!r}: consumers that validate the baseline's values reject it",
        )


def _enumerated(schema: Schema, json_type: str) -> frozenset[Any] | None:
    if "const" in schema:
        values = [schema["const"]]
    elif "enum" in schema:
        values = list(schema["enum"])
    else:
        return None
    return frozenset(value for value in values if _json_type(value) == json_type)


def _types_of(branches: list[Schema]) -> frozenset[str]:
    types: set[str] = set()
    for branch in branches:
        declared = branch.get("type")
        if isinstance(declared, str):
            types.add(declared)
        elif isinstance(declared, list):
            types.update(declared)
        elif "const" in branch:
            types.add(_json_type(branch["const"]))
        elif "enum" in branch:
            types.update(_json_type(value) for value in branch["enum"])
        elif "properties" in branch:
            types.add("object")
        else:
            types.add("any")
    return frozenset(types)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _paired(baseline: list[Schema], current: list[Schema]) -> Iterator[tuple[Schema, Schema]]:
    """Branches of one type matched up: one each, or object models by title."""
    if len(baseline) == 1 and len(current) == 1:
        yield baseline[0], current[0]
        return
    by_title = {branch.get("title"): branch for branch in current}
    for branch in baseline:
        match = by_title.get(branch.get("title"))
        if match is None:
            raise UnsupportedSchemaError(
                f"cannot match union member {branch.get('title')!r} in the current schema"
            )
        yield branch, match


def _identity(schema: Schema) -> str:
    return str(schema.get("x-resolved-from", ""))


def _shown(path: str) -> str:
    return path or "(root)"


def _listed(types: frozenset[str]) -> str:
    return " | ".join(sorted(types))
