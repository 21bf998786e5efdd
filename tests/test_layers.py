"""The package's layers: every import points down (ARCHITECTURE.md), so each layer can be read, tested
and replaced without the ones above it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sidecar_thumbs"

# Lowest first. Modules at the top of the package that are not in a layer folder belong to the
# foundation (errors, plain types, logging, number formatting, the numba cache), to the facade (the
# public API and the wiring of settings into objects), or are the entry point (``python -m``).
LAYERS = [
    "foundation", "files", "mesh", "render", "settings", "dam", "store", "reports", "work", "daemon",
    "facade", "cli", "entry",
]  # fmt: skip
FOUNDATION = {"errors", "types", "logs", "units", "numba_cache"}
FACADE = {"__init__", "api", "wiring"}
ENTRY = {"__main__"}


def layer_of(module: str) -> str:
    """The layer of ``sidecar_thumbs.x.y`` (or of ``sidecar_thumbs`` itself: the facade)."""
    parts = module.split(".")
    if len(parts) == 1:
        return "facade"
    head = parts[1]
    if (PACKAGE / head).is_dir():
        return head
    if head in FOUNDATION:
        return "foundation"
    if head in FACADE:
        return "facade"
    if head in ENTRY:
        return "entry"
    raise AssertionError(f"{module} is in no layer: add it to a layer folder or to FOUNDATION/FACADE")


def imports() -> list[tuple[str, str, int]]:
    """(importing module, imported module, line) for every import of the package by the package."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(p for p in rel.parts if p != "__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sidecar_thumbs"):
                if node.module == "sidecar_thumbs":
                    # `from sidecar_thumbs import x`: the facade, unless x is a submodule or the version.
                    for alias in node.names:
                        target = f"sidecar_thumbs.{alias.name}"
                        named = (PACKAGE / alias.name).is_dir() or (PACKAGE / f"{alias.name}.py").exists()
                        if alias.name != "__version__":
                            out.append((module, target if named else "sidecar_thumbs", node.lineno))
                else:
                    out.append((module, node.module, node.lineno))
            elif isinstance(node, ast.Import):
                out += [(module, a.name, node.lineno) for a in node.names if a.name.startswith("sidecar_thumbs.")]
    return out


def test_every_module_is_in_a_layer() -> None:
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        layer_of(".".join(p for p in rel.parts if p != "__init__"))


@pytest.mark.parametrize("edge", imports(), ids=lambda e: f"{e[0]}->{e[1]}")
def test_imports_point_down_the_layers(edge: tuple[str, str, int]) -> None:
    source, target, line = edge
    a, b = layer_of(source), layer_of(target)
    assert LAYERS.index(b) <= LAYERS.index(a), f"{source}:{line} ({a}) imports {target} ({b}), a layer above it"
