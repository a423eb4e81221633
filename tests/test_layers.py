"""The package layers of DESIGN.md, checked on the source: imports point one way.

``web``, ``cli``, ``orchestration`` and ``pipelines`` use ``models`` and ``loaders``;
``models`` uses ``loaders``; ``loaders`` uses ``media``; everything uses the base (``schema``,
``stores``, ``db`` and the other top-level modules); ``schema`` uses nothing of ours.
Every import statement counts, also one inside a function (a lazy import is still a
dependency) and a relative one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import alsql

ROOT = Path(alsql.__file__).parent
UPPER = ("pipelines", "orchestration", "web", "cli")
# package -> the packages of ours it must never import
FORBIDDEN = {
    "schema": ("stores", "media", "loaders", "models", *UPPER),
    "stores": ("media", "loaders", "models", *UPPER),
    "media": ("loaders", "models", *UPPER),
    "loaders": ("models", *UPPER),
    "models": UPPER,
}
BASE_MODULES = sorted(p.stem for p in ROOT.glob("*.py") if p.stem != "__init__")


def imported(path: Path, top: Path) -> list[tuple[int, str]]:
    """``(line, dotted name)`` of every module (and ``from`` name) ``path`` imports, anywhere in it
    (``top``: the folder that holds the ``alsql`` package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = list(path.relative_to(top).with_suffix("").parts)
    package = package[:-1]  # the package a relative import starts from (also for __init__)
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.append((node.lineno, module))
            out += [(node.lineno, f"{module}.{a.name}") for a in node.names]
        elif (isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name))
              and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            out.append((node.lineno, node.args[0].value))
    return out


def violations(package: str, forbidden: tuple[str, ...], root: Path = ROOT) -> list[str]:
    """``file:line imports name`` for each import of ``package`` (a folder or a module of
    ``root``) that names one of the ``forbidden`` packages of ours."""
    where = root / package
    files = sorted(where.rglob("*.py")) if where.is_dir() else [root / f"{package}.py"]
    bad = []
    for path in files:
        for line, name in imported(path, root.parent):
            parts = name.split(".")
            if len(parts) > 1 and parts[0] == "alsql" and parts[1] in forbidden:
                bad.append(f"{path.relative_to(root.parent).as_posix()}:{line} imports {name}")
    return sorted(set(bad))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(package):
    assert (ROOT / package).is_dir()
    assert violations(package, FORBIDDEN[package]) == []


@pytest.mark.parametrize("module", BASE_MODULES)
def test_the_base_modules_import_no_layer(module):
    assert violations(module, ("stores", "media", "loaders", "models", *UPPER)) == []


def test_the_checker_sees_lazy_relative_and_dynamic_imports(tmp_path):
    pkg = tmp_path / "alsql" / "media"
    pkg.mkdir(parents=True)
    sample = (
        "import os\n"
        "def f():\n"
        "    from alsql.loaders.stores import store_for\n"
        "    from ..models import networks\n"
        "    import importlib\n"
        "    importlib.import_module('alsql.web.app')\n"
    )
    (pkg / "_layer_probe_sample.py").write_text(sample, encoding="utf-8")
    assert violations("media", FORBIDDEN["media"], root=tmp_path / "alsql") == [
        "alsql/media/_layer_probe_sample.py:3 imports alsql.loaders.stores",
        "alsql/media/_layer_probe_sample.py:3 imports alsql.loaders.stores.store_for",
        "alsql/media/_layer_probe_sample.py:4 imports alsql.models",
        "alsql/media/_layer_probe_sample.py:4 imports alsql.models.networks",
        "alsql/media/_layer_probe_sample.py:6 imports alsql.web.app",
    ]
