"""Two rules keep the layers apart.

1. Nothing outside the napari package (``_napari/``) imports Qt, napari or magicgui: the
   engine and the CLI run headless, and so do the benchmarks (``bench/``).
2. The engine (everything but ``_napari/`` and ``bench/``) imports neither the napari
   package nor ``bench``; the CLI reaches a bench sub-command only through its registry of
   module names, imported when that sub-command runs.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "src" / "napari_pal"
GUI_PREFIXES = ("_widget", "_reader", "_writer", "_sample_data", "_qt", "_gui", "_plot")
GUI_PACKAGES = ("_napari",)
FORBIDDEN = ("qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "napari", "magicgui",
             "superqt", "vispy")


def _is_gui(rel: Path) -> bool:
    return any(part in GUI_PACKAGES for part in rel.parts[:-1]) or rel.name.startswith(
        GUI_PREFIXES)


def _engine_files() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if not _is_gui(p.relative_to(PKG)))


def _module_name(path: Path) -> str:
    parts = ("napari_pal", *path.relative_to(PKG).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _forbidden(name: str | None) -> bool:
    top = (name or "").split(".")[0]
    return top in FORBIDDEN


def _gui_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad = []
    for node in ast.walk(tree):  # walks function bodies too: lazy imports count
        if isinstance(node, ast.Import):
            bad += [f"line {node.lineno}: import {a.name}" for a in node.names
                    if _forbidden(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _forbidden(node.module):
            bad.append(f"line {node.lineno}: from {node.module} import ...")
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id == "__import__"))
              and _forbidden(node.args[0].value)):
            bad.append(f"line {node.lineno}: dynamic import of {node.args[0].value}")
    return bad


def test_gui_layer_detection():
    assert _is_gui(Path("_widget.py")) and _is_gui(Path("_reader_tiff.py"))
    assert _is_gui(Path("_napari/anything.py"))
    assert not _is_gui(Path("training.py")) and not _is_gui(Path("cli.py"))
    assert _forbidden("napari.layers") and _forbidden("PyQt5.QtCore")
    assert not _forbidden("napari_pal.method.training") and not _forbidden("numpy")


def test_engine_sources_import_no_gui():
    files = _engine_files()
    assert files, f"no engine modules found under {PKG}"
    problems = {str(p.relative_to(PKG)): _gui_imports(p) for p in files}
    problems = {k: v for k, v in problems.items() if v}
    assert not problems, f"engine modules import GUI packages: {problems}"


def test_engine_modules_import_headless():
    modules = sorted({_module_name(p) for p in _engine_files()})
    assert "napari_pal.cli" in modules
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        f"bad = sorted(k for k in sys.modules if k.split('.')[0] in {FORBIDDEN!r})\n"
        "print(json.dumps(bad))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    if proc.returncode != 0:
        pytest.fail(f"importing the engine modules failed:\n{proc.stderr[-4000:]}")
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not loaded, f"importing the engine pulled in GUI packages: {loaded}"


LAYERS = ("napari_pal._napari", "napari_pal.bench")


def _layer_imports(path: Path) -> list[str]:
    """Static imports of the napari package or bench (lazy ones inside functions count)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        bad += [f"line {node.lineno}: {n}" for n in names
                if any(n == layer or n.startswith(layer + ".") for layer in LAYERS)]
    return bad


def test_engine_imports_neither_the_napari_package_nor_bench():
    files = [p for p in _engine_files() if "bench" not in p.relative_to(PKG).parts[:-1]]
    assert any(p.name == "training.py" for p in files)
    problems = {str(p.relative_to(PKG)): _layer_imports(p) for p in files}
    problems = {k: v for k, v in problems.items() if v}
    assert not problems, f"engine modules import the napari package or bench: {problems}"


def test_layer_rule_detects_a_bench_import(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("def f():\n    from napari_pal.bench import speed\n"
                   "import napari_pal._napari.widget\n")
    assert len(_layer_imports(bad)) == 3
    ok = tmp_path / "y.py"
    ok.write_text("from napari_pal.method import training\nimport napari_pal.benchx\n")
    assert _layer_imports(ok) == []
