"""Who imports whom, read from the source with `ast` (imports inside functions included: a lazy
import is an import): no package of the workspace imports itself in a loop, the services keep
their layers, no service imports another, and the tools' shared modules import no command.

The rules are data (`LAYER_RULES`, `ONLY_IMPORTED_BY`, `PACKAGE_RULES`, `SHARED_TOOL_MODULES`):
a service module's layer is read from its path, so a service that renames or adds modules keeps
the same rules. An edge that breaks a rule today and is being worked on goes in
`KNOWN_EXCEPTIONS`, with why; the rule itself stays as strict as it is.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

# Where the installable packages live (each folder holds one `casewire_*` package).
PACKAGE_FOLDERS = ("libs/*", "services/*", "tools/*")

# A service module's layer, from its path below the package (`casewire_router.X...`):
# `domain`, `adapters`, `entrypoints` by their folder; `main` and `bootstrap` by name; the
# service layer is `service.py`, any `*_service.py` or a `service_layer/` folder.
#
# Layer → the layers it must not import (within its own service).
LAYER_RULES: Mapping[str, frozenset[str]] = {
    "domain": frozenset({"adapters", "entrypoints", "service", "main", "bootstrap"}),
    "adapters": frozenset({"entrypoints", "main", "bootstrap"}),
}
# Layer → the only modules of its service that may import it (suffixes below the package).
ONLY_IMPORTED_BY: Mapping[str, frozenset[str]] = {
    "main": frozenset({"entrypoints.cli", "entrypoints.serve"}),
}
# Package kind → the workspace packages it may import besides itself. (Tools may import any.)
PACKAGE_RULES: Mapping[str, frozenset[str]] = {
    "libs": frozenset(),
    "services": frozenset({"casewire_common"}),
}

# tools/dev: the modules the commands and benchmarks share import nothing else of the tools
# (bench.py and the benchmarks once imported each other in a loop for want of them).
SHARED_TOOL_MODULES: frozenset[str] = frozenset(
    f"casewire_dev.{name}"
    for name in (
        "paths",
        "results",
        "cpu",
        "load_client",
        "stack",
        "services",
        "webhooks",
        "corpus",
    )
)

# (importer, imported) edges that break a rule today, each with the reason it is tolerated
# until the module's owners remove it. Keep it empty when you can; a listed edge that no
# longer exists fails the test, so that the list only shrinks.
KNOWN_EXCEPTIONS: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class Module:
    name: str  # dotted, e.g. casewire_router.domain.routing
    package: str  # the top-level package, e.g. casewire_router
    kind: str  # the folder it is installed from: libs, services or tools
    path: Path
    is_package: bool  # an __init__.py


def discover(root: Path = ROOT) -> dict[str, Module]:
    """Every module of every workspace package, by dotted name."""
    modules: dict[str, Module] = {}
    for pattern in PACKAGE_FOLDERS:
        kind = pattern.split("/", 1)[0]
        for folder in sorted(root.glob(pattern)):
            for package_dir in sorted(folder.glob("casewire_*")):
                if not (package_dir / "__init__.py").is_file():
                    continue
                for path in sorted(package_dir.rglob("*.py")):
                    parts = list(path.relative_to(folder).with_suffix("").parts)
                    is_package = parts[-1] == "__init__"
                    if is_package:
                        parts.pop()
                    name = ".".join(parts)
                    modules[name] = Module(name, parts[0], kind, path, is_package)
    return modules


def _known(name: str, modules: Mapping[str, Module]) -> str | None:
    """`name`, or the closest enclosing module that is one of ours; None for other packages."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: Module, modules: Mapping[str, Module]) -> set[str]:
    """The workspace modules that `module` imports, anywhere in its code."""
    tree = ast.parse(module.path.read_text("utf-8"), str(module.path))
    here = module.name if module.is_package else module.name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(filter(None, (_known(alias.name, modules) for alias in node.names)))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                target = submodule if submodule in modules else _known(source, modules)
                if target is not None:
                    found.add(target)
    found.discard(module.name)
    return found


def import_graph(modules: Mapping[str, Module]) -> dict[str, set[str]]:
    return {name: imports_of(module, modules) for name, module in modules.items()}


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan): each holds a loop."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer(module: str) -> str | None:
    """The layer of a service module, from its path; None for the others (settings, ...)."""
    parts = module.split(".")
    if len(parts) < 2:
        return None
    first = parts[1]
    if first in ("domain", "adapters", "entrypoints", "main", "bootstrap"):
        return first
    if first in ("service", "service_layer") or first.endswith("_service"):
        return "service"
    return None


def layer_violations(
    graph: Mapping[str, Iterable[str]], modules: Mapping[str, Module]
) -> set[tuple[str, str]]:
    """The (importer, imported) edges inside a service that break `LAYER_RULES` or
    `ONLY_IMPORTED_BY`."""
    broken: set[tuple[str, str]] = set()
    for importer, targets in graph.items():
        if modules[importer].kind != "services":
            continue
        importer_layer = layer(importer)
        below = importer.split(".", 1)[1] if "." in importer else ""
        for target in targets:
            if modules[target].package != modules[importer].package:
                continue
            target_layer = layer(target)
            if target_layer is None:
                continue
            if importer_layer is not None and target_layer in LAYER_RULES.get(
                importer_layer, frozenset()
            ):
                broken.add((importer, target))
            allowed = ONLY_IMPORTED_BY.get(target_layer)
            if allowed is not None and below not in allowed:
                broken.add((importer, target))
    return broken


def package_violations(
    graph: Mapping[str, Iterable[str]], modules: Mapping[str, Module]
) -> set[tuple[str, str]]:
    """The edges from a package to a workspace package that `PACKAGE_RULES` does not allow."""
    broken: set[tuple[str, str]] = set()
    for importer, targets in graph.items():
        allowed = PACKAGE_RULES.get(modules[importer].kind)
        if allowed is None:
            continue
        for target in targets:
            package = modules[target].package
            if package != modules[importer].package and package not in allowed:
                broken.add((importer, target))
    return broken


def shared_tool_violations(graph: Mapping[str, Iterable[str]]) -> set[tuple[str, str]]:
    """The edges from a shared tools module to a tools module that is not shared."""
    return {
        (importer, target)
        for importer in SHARED_TOOL_MODULES & graph.keys()
        for target in graph[importer]
        if target.split(".")[0] == importer.split(".")[0] and target not in SHARED_TOOL_MODULES
    }


MODULES = discover()
GRAPH = import_graph(MODULES)


def test_every_workspace_package_is_found() -> None:
    packages = {module.package for module in MODULES.values()}
    assert {
        "casewire_common",
        "casewire_ingest",
        "casewire_router",
        "casewire_sla",
        "casewire_dev",
    } <= packages


def test_no_module_imports_itself_through_a_loop() -> None:
    assert cycles(GRAPH) == []


def test_each_service_keeps_its_layers() -> None:
    broken = layer_violations(GRAPH, MODULES)
    assert sorted(broken - KNOWN_EXCEPTIONS) == []


def test_no_service_imports_another_and_the_common_library_imports_none() -> None:
    broken = package_violations(GRAPH, MODULES)
    assert sorted(broken - KNOWN_EXCEPTIONS) == []


def test_the_modules_the_tools_share_import_no_command_or_benchmark() -> None:
    assert GRAPH.keys() >= SHARED_TOOL_MODULES  # each one still exists
    assert sorted(shared_tool_violations(GRAPH) - KNOWN_EXCEPTIONS) == []


def test_every_known_exception_still_exists() -> None:
    broken = (
        layer_violations(GRAPH, MODULES)
        | package_violations(GRAPH, MODULES)
        | shared_tool_violations(GRAPH)
    )
    assert sorted(KNOWN_EXCEPTIONS - broken) == [], "fixed: remove it from KNOWN_EXCEPTIONS"


# --- The checker itself, on made-up graphs --------------------------------------------------


def test_a_loop_through_three_modules_is_found_and_a_chain_is_not() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def _service(*names: str) -> dict[str, Module]:
    return {name: Module(name, name.split(".")[0], "services", Path(name), False) for name in names}


def test_the_domain_importing_an_adapter_or_main_breaks_the_layers() -> None:
    modules = _service(
        "casewire_x.domain.rules",
        "casewire_x.adapters.store",
        "casewire_x.message_service",
        "casewire_x.main",
        "casewire_x.entrypoints.cli",
        "casewire_x.settings",
    )
    graph = {
        "casewire_x.domain.rules": {"casewire_x.adapters.store", "casewire_x.settings"},
        "casewire_x.adapters.store": {"casewire_x.domain.rules"},
        "casewire_x.message_service": {"casewire_x.main", "casewire_x.adapters.store"},
        "casewire_x.main": {"casewire_x.message_service"},
        "casewire_x.entrypoints.cli": {"casewire_x.main"},
        "casewire_x.settings": set(),
    }
    assert layer_violations(graph, modules) == {
        ("casewire_x.domain.rules", "casewire_x.adapters.store"),
        ("casewire_x.message_service", "casewire_x.main"),
    }


def test_relative_and_lazy_imports_count(tmp_path: Path) -> None:
    package = tmp_path / "services" / "x" / "casewire_x"
    (package / "domain").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "domain" / "__init__.py").write_text("")
    (package / "domain" / "rules.py").write_text(
        "from . import words\n\ndef load():\n    from ..adapters import store\n"
    )
    (package / "domain" / "words.py").write_text("")
    (package / "adapters").mkdir()
    (package / "adapters" / "__init__.py").write_text("")
    (package / "adapters" / "store.py").write_text("import casewire_x.domain.words\nimport json\n")
    modules = discover(tmp_path)

    graph = import_graph(modules)

    assert graph["casewire_x.domain.rules"] == {
        "casewire_x.domain.words",
        "casewire_x.adapters.store",
    }
    assert graph["casewire_x.adapters.store"] == {"casewire_x.domain.words"}
