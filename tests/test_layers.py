"""The direction of imports between the layers (docs/architecture.md), read from the source."""

from __future__ import annotations

import ast
from pathlib import Path

import dicomweb_proxy

PACKAGE = Path(dicomweb_proxy.__file__).resolve().parent

#: What each layer (a subpackage, or a top-level module) may import of the others. Anything
#: not listed is refused, so a new layer or a new dependency is a decision made here.
ALLOWED: dict[str, set[str]] = {
    "cache": set(),
    "capacity": set(),
    "config": set(),
    "dicom": {"cache"},
    "stores": {"dicom", "cache"},
    "index": {"dicom"},
    "db_secret": {"config"},
    "services": {"config", "db_secret", "capacity", "index", "stores"},
    "retrieve": {"dicom", "stores", "cache", "capacity"},
    "ingest": {"dicom", "index", "stores", "services", "config", "cache", "capacity"},
    "samples": {"dicom"},
    "http": {"retrieve", "dicom", "services", "config", "cache", "capacity", "stores", "index"},
    "cli": {
        "http",
        "ingest",
        "services",
        "config",
        "index",
        "stores",
        "samples",
        "db_secret",
    },
    "__main__": {"cli"},
    "__init__": set(),
}
#: Modules of http/ that may reach into index/ or stores/, and why; the rest go through
#: retrieve/ and services.
HTTP_EXCEPTIONS = {
    # conformance describes the matching keys the index's columns hold; qido maps a search
    # cut by the statement timeout (index.database.StatementTimeout) to 503
    "index": {"conformance", "qido"},
    "stores": {"errors"},  # maps store errors to status codes
}


def _imports(file: Path) -> list[tuple[str, int]]:
    """The dicomweb_proxy modules *file* imports, with line numbers."""
    relative = file.relative_to(PACKAGE.parent).with_suffix("")
    module = ".".join(relative.parts)
    container = module if file.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = container.rsplit(".", node.level - 1)[0] if node.level else ""
            names = [".".join(part for part in (base, node.module) if part)]
        else:
            continue
        found += [(name, node.lineno) for name in names if name.startswith("dicomweb_proxy")]
    return found


def test_layers_import_only_what_they_may():
    offenders = []
    for file in sorted(PACKAGE.rglob("*.py")):
        parts = file.relative_to(PACKAGE).with_suffix("").parts
        layer = parts[0]
        assert layer in ALLOWED, f"{file}: a layer docs/architecture.md and this test do not know"
        for name, line in _imports(file):
            target_parts = tuple(name.split(".")[1:])
            if not target_parts:
                continue
            target = target_parts[0]
            if target == layer:
                continue
            allowed = target in ALLOWED[layer]
            if layer == "http" and target in HTTP_EXCEPTIONS:
                allowed = parts[-1] in HTTP_EXCEPTIONS[target]
            if not allowed:
                offenders.append(f"{'/'.join(parts)}.py:{line} imports {name}")
    assert offenders == []


def test_index_has_no_import_cycle_between_its_modules():
    """index/ modules form a tree (lookup.py and reader.py once imported each other)."""
    graph: dict[str, set[str]] = {}
    for file in sorted((PACKAGE / "index").glob("*.py")):
        names = {name.split(".")[2] for name, _ in _imports(file) if name.count(".") >= 2}
        graph[file.stem] = {name for name in names if name != file.stem} & {
            f.stem for f in (PACKAGE / "index").glob("*.py")
        }
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, " -> ".join((*path, node))
        if node in done:
            return
        for successor in graph.get(node, ()):
            visit(successor, (*path, node))
        done.add(node)

    for node in graph:
        visit(node, ())
