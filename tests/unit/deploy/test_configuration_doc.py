"""docs/operations/configuration.md lists every setting of every service, with the default the
code has, and nothing that does not exist."""

from __future__ import annotations

import re
from typing import Any

import pytest
from casewire_common.settings import ServiceSettings
from casewire_ingest.settings import IngestSettings, MetaApp, XApp
from casewire_router.settings import RouterSettings
from casewire_sla.settings import SlaSettings
from pydantic import BaseModel, SecretStr, TypeAdapter
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from tests.unit.deploy.rendering import REPO

GUIDE = REPO / "docs" / "operations" / "configuration.md"
SETTINGS = (ServiceSettings, IngestSettings, RouterSettings, SlaSettings)
ROW = re.compile(r"^\| `(?P<name>[^`]+)` \| (?P<type>[^|]+) \| (?P<default>[^|]+) \| .+ \|$")


def _rows() -> dict[str, str]:
    """Documented name (variable or JSON key) -> its default cell (a key in both app tables,
    `accounts`, keeps its first row)."""
    rows: dict[str, str] = {}
    for line in GUIDE.read_text().splitlines():
        match = ROW.match(line)
        if match:
            rows.setdefault(match["name"], match["default"].strip())
    return rows


def _variables() -> dict[str, FieldInfo]:
    return {
        f"CASEWIRE_{name.upper()}": field
        for settings in SETTINGS
        for name, field in settings.model_fields.items()
    }


def _comparable(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _documented_default(cell: str, field: FieldInfo) -> Any:
    if cell == "unset":
        return None
    text = cell.strip("`")
    assert field.annotation is not None
    adapter: TypeAdapter[Any] = TypeAdapter(field.annotation)
    return adapter.validate_json(text) if text.startswith("[") else adapter.validate_python(text)


def _code_default(field: FieldInfo) -> Any:
    return field.get_default(call_default_factory=True)


def test_every_setting_of_every_service_is_documented() -> None:
    assert sorted(set(_variables()) - set(_rows())) == []


def test_every_documented_variable_exists() -> None:
    documented = {name for name in _rows() if name.startswith("CASEWIRE_")}
    assert sorted(documented - set(_variables())) == []


@pytest.mark.parametrize("variable", sorted(_variables()))
def test_documented_default_is_the_code_default(variable: str) -> None:
    field = _variables()[variable]
    cell = _rows()[variable]
    assert _comparable(_documented_default(cell, field)) == _comparable(_code_default(field))


@pytest.mark.parametrize("model", [MetaApp, XApp])
def test_every_key_of_an_app_entry_is_documented(model: type[BaseModel]) -> None:
    rows = _rows()
    for name, field in model.model_fields.items():
        assert name in rows, name
        if field.default is PydanticUndefined and field.default_factory is None:
            assert rows[name] == "required", name


def test_a_wrong_default_in_the_guide_would_be_caught() -> None:
    field = RouterSettings.model_fields["router_reopen_window"]
    assert _documented_default("`P6D`", field) != _code_default(field)
