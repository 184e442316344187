"""The package layers import one way: base → export · serve · clients → monitor → … → cli."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]

# Rank of each package; a module may import only packages of a lower rank, or its own package.
LAYERS = {
    "maas.base.errors": 0,
    "maas.base.machine": 1,
    "maas.base.sentences": 1,
    "maas.base.triton": 1,
    "maas.base.runtimes": 2,
    "maas.base.served": 3,
    "maas.export": 10,
    "maas.serve": 10,
    "maas.clients": 10,
    "maas.monitor": 15,
    "maas.benchmarks": 20,
    "maas.deploy": 25,
    "maas.cli": 30,
}


def package_of(module: str) -> str:
    """The longest LAYERS key that `module` belongs to."""
    candidates = [name for name in LAYERS if module == name or module.startswith(name + ".")]
    return max(candidates, key=len) if candidates else module


def source_modules() -> dict[str, Path]:
    """Every maas module and its file, through pyproject's folder mapping."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    folders = config["tool"]["setuptools"]["package-dir"]
    modules: dict[str, Path] = {}
    for package, folder in folders.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join([package, *[p for p in parts if p != "__init__"]])
            modules.setdefault(name, path)  # a mapped subfolder wins over a search under src
    return modules


def imports_of(module: str, path: Path) -> set[str]:
    """The maas modules one module imports, relative imports resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join([*base, node.module or ""]) if node.level else (node.module or "")
            target = target.rstrip(".")
            found |= {target} | {f"{target}.{alias.name}" for alias in node.names}
    return {name for name in found if name == "maas" or name.startswith("maas.")}


def upward_imports() -> list[str]:
    """Every import of a package from one at the same or a lower rank, other than its own."""
    wrong = []
    for module, path in source_modules().items():
        own = package_of(module)
        if own not in LAYERS:
            continue
        for target in imports_of(module, path):
            other = package_of(target)
            if other == own or other not in LAYERS:
                continue
            if LAYERS[other] >= LAYERS[own]:
                wrong.append(f"{module} imports {target}")
    return sorted(wrong)


def test_layers_import_only_downwards() -> None:
    assert upward_imports() == []


def test_every_module_belongs_to_a_layer() -> None:
    roots = ("maas", "maas.base")  # package markers with docstrings only
    unplaced = [m for m in source_modules() if m not in roots and package_of(m) not in LAYERS]
    assert unplaced == []


def test_layer_check_catches_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "probe.py"
    module.write_text("from maas.cli import app\nfrom ..triton import config\n")
    assert {"maas.cli", "maas.base.triton.config"} <= imports_of("maas.base.served.probe", module)
    assert LAYERS[package_of("maas.cli")] > LAYERS[package_of("maas.base.served.probe")]


@pytest.mark.parametrize(
    "module", ["maas.base.triton", "maas.serve", "maas.clients", "maas.benchmarks.locust_users"]
)
def test_reading_the_triton_contract_does_not_import_torch(module: str) -> None:
    probe = f"import sys, {module}; print(sorted(m for m in ('torch', 'onnx') if m in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]"
