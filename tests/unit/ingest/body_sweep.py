"""A robustness sweep shared by the normalizer tests: put an odd value in each field of a real
body in turn; the normalizer must answer with messages or a NormalizationError (a 4xx with a
reason), never another exception (a 5xx)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from casewire_ingest.domain.normalized import NormalizationError

ODD_VALUES: tuple[Any, ...] = (None, 0, -1, 1.5, True, "", "x", [], {}, [1], {"a": 1}, 2**70)


def field_paths(node: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """The path of every value inside a body (not the body itself)."""
    if isinstance(node, dict):
        children: list[tuple[Any, Any]] = list(node.items())
    elif isinstance(node, list):
        children = list(enumerate(node))
    else:
        return
    for key, child in children:
        yield (*path, key)
        yield from field_paths(child, (*path, key))


def replaced(body: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    parent: Any = changed
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = copy.deepcopy(value)
    return changed


def assert_every_odd_field_is_tolerated_or_rejected(
    normalize: Callable[[dict[str, Any], datetime], Any],
    body: dict[str, Any],
    received_at: datetime,
) -> None:
    for path in field_paths(body):
        for value in ODD_VALUES:
            try:
                normalize(replaced(body, path, value), received_at)
            except NormalizationError:
                pass
            except Exception as error:
                pytest.fail(f"{path} = {value!r}: {error!r}")
