"""Imports run one way, down the pipeline (CONTRIBUTING.md): a module may import its own package and
the layers below it, never a layer above or beside it; and no two modules import each other."""
from __future__ import annotations

import ast
from pathlib import Path

import hashseek

ROOT = Path(hashseek.__file__).parent
LAYERS = [("core",), ("data",), ("models",), ("losses", "hashers", "index"), ("train",), ("search",),
          ("eval", "service"), ("cli",)]
LEVEL = {package: n for n, group in enumerate(LAYERS) for package in group}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every hashseek module a file imports, function-local imports included."""
    found = set()
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("hashseek")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.startswith("hashseek"):
                found.add(base)
                found |= {f"{base}.{a.name}" for a in node.names}
    return found


def _package(module: str) -> str | None:
    """The layer package of a module; None for hashseek/__init__.py and __main__.py, which sit above all."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LEVEL else None


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def test_every_package_has_a_layer():
    packages = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert packages == set(LEVEL), f"packages without a layer in this test: {packages ^ set(LEVEL)}"
    assert {p.name for p in ROOT.glob("*.py")} <= {"__init__.py", "__main__.py"}, "modules belong in a layer's package"


def test_imports_run_down_the_layers():
    upward = []
    for module, imported in _graph().items():
        own = _package(module)
        if own is None:   # hashseek/__init__.py, __main__.py
            continue
        for target in imported:
            other = _package(target)
            if other is None or other == own:
                continue
            if LEVEL[other] >= LEVEL[own]:
                upward.append(f"{module} -> {target}")
    assert not upward, "imports up or across the layers:\n" + "\n".join(sorted(upward))


def test_no_import_cycles_between_modules():
    graph = _graph()
    cycles = sorted(f"{a} <-> {b}" for a, targets in graph.items() for b in targets
                    if a < b and a in graph.get(b, set()) and not b.startswith(a + ".") and not a.startswith(b + "."))
    assert not cycles, "modules importing each other:\n" + "\n".join(cycles)
