"""The napari layer's structure: no import cycle in the package, no mixins, small modules,
and a review state that imports no Qt (it is shared by every panel and tested headless)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "src" / "napari_pal"


def _module(path: Path) -> str:
    parts = ("napari_pal", *path.relative_to(PKG).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the napari_pal modules it imports (at any depth of its code: lazy imports
    count, so a cycle cannot hide inside a function)."""
    modules = {_module(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t in modules and t != name}
        # a package's __init__ is imported with each of its modules: not an edge of interest
        graph[name] = {d for d in deps if not (modules[d].name == "__init__.py"
                                               and name.startswith(d + "."))}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for d in sorted(graph.get(n, ())):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state and (found := visit(d)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycle() -> None:
    graph = import_graph()
    assert "napari_pal._napari.widget" in graph
    assert "napari_pal._napari.panels.training" in graph["napari_pal._napari.widget"]
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_no_mixins_and_small_modules() -> None:
    for path in sorted((PKG / "_napari").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                assert len(node.bases) <= 1, f"{path.name}: {node.name} has several bases"
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= 400, f"{path.relative_to(PKG)} has {lines} lines"


def test_state_and_jobs_import_no_qt() -> None:
    code = ("import sys, json, napari_pal._napari.state, napari_pal.jobs.train, "
            "napari_pal.jobs.score, napari_pal.jobs.events; "
            "print(json.dumps(sorted(k for k in sys.modules if k.split('.')[0] in "
            "('qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'napari', 'torch'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_review_state_signals() -> None:
    import numpy as np

    from napari_pal._napari.state import REVIEWED, UNREVIEWED, ReviewState
    from napari_pal.errors import PalError

    st = ReviewState()
    seen: list[tuple] = []
    st.about_to_change.connect(lambda: seen.append(("about",)))
    st.dataset_changed.connect(lambda: seen.append(("dataset",)))
    st.status_changed.connect(lambda n: seen.append(("status", n)))
    st.masks_changed.connect(lambda: seen.append(("masks",)))

    class Layer:
        data = np.zeros((2, 4, 4), np.uint8)

    meta = {"root": "/x", "names": ["a", "b"], "classes": ["lungs"], "shapes": [(4, 4)] * 2,
            "offsets": [(0, 0)] * 2}
    st.set_dataset(Layer(), meta)
    assert seen == [("about",), ("dataset",)] and st.status == {"a": UNREVIEWED, "b": UNREVIEWED}
    try:
        st.mask_layers()
        raise AssertionError("no mask layer chosen: a PalError expected")
    except PalError:
        pass
    layer = Layer()
    st.set_mask_layers([layer])
    st.set_mask_layers([layer])  # the same choice again: no signal
    assert st.mask_layers() == [layer] and seen.count(("masks",)) == 1
    st.set_status("b", REVIEWED)
    st.set_status("b", REVIEWED)
    assert seen.count(("status", "b")) == 1
    st.status["a"] = REVIEWED
    assert [s.name for s in st.worst_first(unreviewed_only=True)] == []
    st.set_dataset(None, None)
    assert st.meta is None and st.status == {} and st.mask_layer_choice == []
