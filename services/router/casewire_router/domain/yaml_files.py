"""Reading the router's YAML files (rules, agents, saved replies) so that every problem names
its line.

One parse gives the node tree (with line marks) and the document; pydantic validates the
document, the file's own consistency checks run on the raw document (so that they are listed
beside type errors), and each problem becomes `source:line: entry: field: problem`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Location = tuple[str | int, ...]
# Validation context key: the caller runs the consistency checks itself, to give each
# problem its line (the model validates them only when validated on its own).
CHECKED_BY_CALLER = "consistency checked by the caller"

Model = TypeVar("Model", bound=BaseModel)
ConsistencyCheck = Callable[[Any], list[tuple[Location, str]]]


class YamlFileError(ValueError):
    """A file that cannot be used, with every problem found in it."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def dotted(location: Location) -> str:
    return ".".join(str(part) for part in location)


def compose_yaml(text: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (with line marks) and the document built from it, from one parse
    (with libyaml when PyYAML has it: ten times faster on a file of thousands of rules)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def yaml_node_at(root: yaml.Node | None, location: Location) -> yaml.Node | None:
    """The deepest node on `location`'s path; parts that name no node (pydantic's union
    branches, a missing field) are passed over, leaving the nearest enclosing node."""
    node = root
    for part in location:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            child = next(
                (value for key, value in node.value if getattr(key, "value", None) == str(part)),
                None,
            )
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if 0 <= part < len(node.value) else None
        if child is not None:
            node = child
    return node


def duplicate_keys(node: yaml.Node | None) -> list[tuple[yaml.Node, str]]:
    """Keys written twice in one mapping: YAML keeps the last silently, hiding the first."""
    found: list[tuple[yaml.Node, str]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(getattr(key, "value", ""))
            if name in seen:
                found.append((key, f"key {name!r} is written twice (YAML keeps only the last)"))
            seen.add(name)
            found.extend(duplicate_keys(value))
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found.extend(duplicate_keys(item))
    return found


def _entry_label(document: Any, location: Location, entries: Mapping[str, str]) -> str:
    """`rule 'id'` (or `rule #n` when it has no usable id) for a location inside an entry
    of one of the file's lists; `entries` names the entries of each list ({"rules": "rule"})."""
    if len(location) < 2 or location[0] not in entries or not isinstance(location[1], int):
        return ""
    listed = document.get(location[0]) if isinstance(document, dict) else None
    index = location[1]
    if not isinstance(listed, list) or not 0 <= index < len(listed):
        return ""
    kind = entries[str(location[0])]
    entry_id = listed[index].get("id") if isinstance(listed[index], dict) else None
    named = isinstance(entry_id, str) and entry_id
    return f"{kind} {entry_id!r}" if named else f"{kind} #{index + 1}"


def _explained(node: yaml.Node | None, error_type: str, message: str) -> str:
    message = message.removeprefix("Value error, ")
    if (
        error_type == "string_type"
        and isinstance(node, yaml.ScalarNode)
        and not node.style
        and not node.tag.endswith(":str")
    ):
        # `id: off`, `id: no`, `id: 42`: YAML reads these unquoted words as booleans or numbers.
        kind = node.tag.rsplit(":", 1)[-1]
        return f"{message} (unquoted, YAML reads {node.value} as {kind}: write '{node.value}')"
    return message


def _described(
    root: yaml.Node | None,
    document: Any,
    source: str,
    entries: Mapping[str, str],
    location: Location,
    message: str,
    error_type: str = "",
) -> tuple[int, str]:
    """(0-based line, `source:line: entry: field: problem`) of a problem at `location`."""
    node = yaml_node_at(root, location)
    line = node.start_mark.line if node is not None else 0
    label = _entry_label(document, location, entries)
    inner = location[2:] if label else location
    where = "".join(f"{part}: " for part in (label, dotted(inner)) if part)
    return line, f"{source}:{line + 1}: {where}{_explained(node, error_type, message)}"


def located(
    text: str,
    source: str,
    problems: list[tuple[Location, str]],
    entries: Mapping[str, str],
) -> list[str]:
    """Problems found in a valid file by looking beyond it (e.g. a rule naming a saved reply
    that the saved-replies file lacks), each with its line and entry, in file order."""
    root, document = compose_yaml(text)
    described = [
        _described(root, document, source, entries, location, message)
        for location, message in problems
    ]
    return [problem for _, problem in sorted(described, key=lambda p: p[0])]


def validated_file(
    text: str,
    source: str,
    model: type[Model],
    *,
    consistency: ConsistencyCheck,
    entries: Mapping[str, str],
    what: str,
    shape: str,
    error: type[YamlFileError],
) -> Model:
    """The file's text validated as `model`; `error` lists every problem, each with its line
    and the entry it is in, in file order. `what` and `shape` name the file and what it holds
    in whole-file problems ("the agents file", "`agents: [...]`")."""
    try:
        root, document = compose_yaml(text)
    except yaml.YAMLError as problem:
        mark = getattr(problem, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise error([f"{where}: not valid YAML: {problem}"]) from problem
    if document is None:
        raise error([f"{source}: {what} is empty: expected {shape}"])
    if not isinstance(document, dict):
        raise error([f"{source}:1: {what} must be a mapping: {shape}"])
    problems: list[tuple[int, str]] = []

    def add(location: Location, message: str, error_type: str = "") -> None:
        problems.append(_described(root, document, source, entries, location, message, error_type))

    for key, message in duplicate_keys(root):
        problems.append((key.start_mark.line, f"{source}:{key.start_mark.line + 1}: {message}"))
    spec: Model | None = None
    try:
        spec = model.model_validate(document, context={CHECKED_BY_CALLER: True})
    except ValidationError as invalid:
        for item in invalid.errors():
            add(tuple(item["loc"]), item["msg"], item["type"])
    for location, message in consistency(document):
        add(location, message)
    if problems or spec is None:
        raise error([problem for _, problem in sorted(problems, key=lambda p: p[0])])
    return spec
