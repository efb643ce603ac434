"""Atomic writes: a writer that raises, or a process killed at any moment, leaves every
file either absent, as it was, or complete in its new version - never half-written."""

from __future__ import annotations

import ast
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from napari_pal.atomic import atomic_path, clean_stale, is_partial, write_text
from napari_pal.data import imagefiles as f
from napari_pal.data.dataset import Layout, open_dataset, write_masks
from napari_pal.method.checkpoint import load_checkpoint, save_checkpoint

SRC = Path(__file__).resolve().parents[2] / "src" / "napari_pal"


# ----------------------------------------------------------------------------- atomic_path

def test_writer_that_raises_keeps_the_old_file(tmp_path: Path) -> None:
    p = tmp_path / "table.csv"
    write_text(p, "old\n")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(p) as tmp:
            tmp.write_text("half of the new conte")
            raise RuntimeError("boom")
    assert p.read_text() == "old\n"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["table.csv"]  # no temp file left


def test_writer_that_raises_creates_nothing(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "mask.png"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(p) as tmp:
            tmp.write_bytes(b"\x89PNG")
            raise KeyboardInterrupt
    assert not p.exists() and list((tmp_path / "sub").iterdir()) == []


def test_success_replaces_and_keeps_usual_permissions(tmp_path: Path) -> None:
    p = tmp_path / "a.txt"
    write_text(p, "one")
    write_text(p, "two")
    assert p.read_text() == "two" and [x.name for x in tmp_path.iterdir()] == ["a.txt"]
    if os.name == "posix":  # mkstemp's 0600 must not leak into exported files
        umask = os.umask(0o022)
        os.umask(umask)
        assert p.stat().st_mode & 0o777 == 0o666 & ~umask
        p.chmod(0o640)
        write_text(p, "three")
        assert p.stat().st_mode & 0o777 == 0o640  # an existing file keeps its mode


def test_failed_checkpoint_save_keeps_the_old_checkpoint(tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoint.pt"
    state = {"segmenter": {}, "qam": {}, "config": {}, "classes": ["a"]}
    save_checkpoint(ckpt, state)
    before = ckpt.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - torch's pickler error type varies
        save_checkpoint(ckpt, {**state, "bad": lambda: 0})  # a lambda cannot be pickled
    assert ckpt.read_bytes() == before and load_checkpoint(ckpt)["classes"] == ["a"]
    assert [x.name for x in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_temp_files_are_dot_files_that_datasets_ignore(tmp_path: Path) -> None:
    masks = np.zeros((1, 8, 8), bool)
    masks[0, 2:5, 2:5] = True
    f.write_png(tmp_path / "images" / "a.png", np.full((8, 8), 90, np.uint8))
    write_masks(tmp_path, Layout.CLASS_FOLDERS, ["lungs"], "a", masks)
    # what a SIGKILL between mkstemp and rename leaves behind:
    for d in ("images", "masks/lungs", "masks"):
        (tmp_path / d / ".b.png.k3j_x9a0.part.png").write_bytes(b"\x89PNG half")
    assert is_partial(".b.png.k3j_x9a0.part.png") and not is_partial("b.png")
    assert open_dataset(tmp_path).names == ["a"]
    assert clean_stale(tmp_path) == []  # fresh: may belong to a write in progress
    removed = clean_stale(tmp_path, min_age_s=0)
    assert len(removed) == 3 and not any(p.exists() for p in removed)
    assert open_dataset(tmp_path).names == ["a"]


# ------------------------------------------------------------- every product write is atomic

_WRITERS = {"write_text", "write_bytes", "save", "savez", "savez_compressed", "imwrite",
            "imsave", "copyfile", "copy", "copy2"}
# Writes that create a NEW file in a NEW folder and never replace a user's file:
# (module, function) -> why
_EXEMPT = {("_stack.py", "backup_masks"): "copies masks into a fresh masks.backup-<time>",
           ("atomic.py", "atomic_path"): "flushes its own temporary file"}
# Receivers whose .save() is napari-pal's own atomic API (RecoveryStore, itself scanned here).
_ATOMIC_RECEIVERS = {"store"}


def _direct_writes(path: Path) -> list[str]:
    """Writing calls whose target is not a name bound by ``with atomic_path(...) as NAME``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    safe: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:  # in order: "with atomic_path(p) as tmp, open(tmp) as fh"
                call = item.context_expr
                if not (isinstance(call, ast.Call) and isinstance(item.optional_vars, ast.Name)):
                    continue
                fname = getattr(call.func, "id", getattr(call.func, "attr", ""))
                if fname == "atomic_path" or (fname == "open" and call.args and isinstance(
                        call.args[0], ast.Name) and call.args[0].id in safe):
                    safe.add(item.optional_vars.id)

    def is_safe(expr: ast.AST | None) -> bool:
        return isinstance(expr, ast.Name) and expr.id in safe

    exempt: set[int] = set()
    for fn_node in ast.walk(tree):
        if isinstance(fn_node, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                (path.name, fn_node.name) in _EXEMPT:
            exempt |= {id(n) for n in ast.walk(fn_node)}
    bad = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or id(node) in exempt:
            continue
        fn = node.func
        where = f"{path.name}:{node.lineno}"
        if isinstance(fn, ast.Name) and fn.id == "open":
            mode = node.args[1] if len(node.args) > 1 else next(
                (k.value for k in node.keywords if k.arg == "mode"), None)
            text = mode.value if isinstance(mode, ast.Constant) else "r"
            if any(c in str(text) for c in "wax+") and not is_safe(node.args[0]):
                bad.append(f"{where} open(..., {text!r})")
        elif isinstance(fn, ast.Attribute) and fn.attr in _WRITERS:
            if fn.attr in ("write_text", "write_bytes"):
                target = fn.value  # path.write_text(...)
            elif fn.attr in ("copyfile", "copy", "copy2"):
                target = node.args[1] if len(node.args) > 1 else None
            else:
                target = node.args[0] if node.args else None
                if fn.attr == "save" and isinstance(fn.value, ast.Name) and \
                        fn.value.id == "torch":
                    target = node.args[1] if len(node.args) > 1 else None
            if fn.attr == "copy" and target is None:
                continue  # dict.copy(), ndarray.copy()
            if isinstance(fn.value, ast.Name) and fn.value.id in _ATOMIC_RECEIVERS:
                continue
            if not is_safe(target):
                bad.append(f"{where} .{fn.attr}()")
    return bad


def test_every_file_the_product_writes_goes_through_atomic_path() -> None:
    """Masks, CSVs, JSON, checkpoints, recovery files: no module writes a file directly."""
    found = [w for p in sorted(SRC.glob("*.py")) for w in _direct_writes(p)]
    assert found == [], "direct (non-atomic) writes: " + ", ".join(found)


# ------------------------------------------------------------------ SIGKILL during export

_N = 2048  # large enough that each PNG/TIFF write takes a noticeable time
_VERSIONS = f"""
import numpy as np
N = {_N}
CLASSES = ["heart", "lungs"]
def masks(name, version):
    seed = sum(map(ord, name)) * 10 + version
    return np.random.default_rng(seed).random((2, N, N)) < 0.5
def table(version):
    return "".join(f"row{{i}},{{version}},{{'x' * 40}}\\n" for i in range(100_000))
"""

_CHILD = _VERSIONS + """
import sys
from pathlib import Path
from napari_pal.atomic import write_text
from napari_pal.data.dataset import Layout, write_masks
data, out = Path(sys.argv[1]), Path(sys.argv[2])
new = {n: masks(n, 2) for n in ("a", "b", "c", "stack")}
text = table(2)
print("ready", flush=True)
while True:
    for n in ("a", "b"):
        write_masks(data, Layout.CLASS_FOLDERS, CLASSES, n, new[n])
    write_text(out / "table.csv", text)
    write_masks(out, Layout.CLASS_FOLDERS, CLASSES, "c", new["c"])
    write_masks(out, Layout.MULTICHANNEL, CLASSES, "stack", new["stack"])
"""


def _targets(data: Path, out: Path) -> dict[Path, tuple[str, str]]:
    """target file -> (kind, name)."""
    t: dict[Path, tuple[str, str]] = {}
    for n, root in (("a", data), ("b", data), ("c", out)):
        for k, c in enumerate(("heart", "lungs")):
            t[root / "masks" / c / f"{n}.png"] = (f"class{k}", n)
    t[out / "masks" / "stack.tif"] = ("stack", "stack")
    t[out / "table.csv"] = ("table", "")
    return t


def _content(path: Path, kind: str, ns: dict, name: str, version: int) -> bool:
    """Whether ``path`` reads back completely as the given version."""
    if kind == "table":
        return path.read_text(encoding="utf-8") == ns["table"](version)
    want = ns["masks"](name, version)
    if kind == "stack":
        return np.array_equal(f.read_multichannel_mask(path, ns["CLASSES"]), want)
    return np.array_equal(f.binary_mask(f.to_plane_mask(*f.read_array(path), path), path),
                          want[int(kind[-1])])


def test_sigkill_mid_export_leaves_old_or_new_never_half(tmp_path: Path) -> None:
    if not hasattr(signal, "SIGKILL"):
        pytest.skip("needs POSIX signals")
    ns: dict = {}
    exec(_VERSIONS, ns)  # noqa: S102 - the same version generator as the child
    rng = random.Random(0)
    outcomes: dict[str, int] = {"absent": 0, "old": 0, "new": 0}
    for round_ in range(5):
        data, out = tmp_path / f"r{round_}" / "data", tmp_path / f"r{round_}" / "out"
        for n in ("a", "b"):  # old versions of the data masks; out/ starts with only a CSV
            f.write_png(data / "images" / f"{n}.png", np.zeros((_N, _N), np.uint8))
            write_masks(data, Layout.CLASS_FOLDERS, ns["CLASSES"], n, ns["masks"](n, 1))
        write_text(out / "table.csv", ns["table"](1))
        targets = _targets(data, out)
        old = {p: p.read_bytes() for p in targets if p.exists()}

        child = subprocess.Popen([sys.executable, "-c", _CHILD, str(data), str(out)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert child.stdout.readline().strip() == b"ready", child.stderr.read().decode()
            time.sleep(rng.uniform(0.2, 1.5))
            assert child.poll() is None, child.stderr.read().decode()
            child.send_signal(signal.SIGKILL)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait(30)
            child.stdout.close()
            child.stderr.close()

        for p, (kind, name) in targets.items():
            if not p.exists():
                assert p not in old, f"{p} vanished"
                outcomes["absent"] += 1
            elif p in old and p.read_bytes() == old[p]:
                outcomes["old"] += 1
            else:
                assert _content(p, kind, ns, name, 2), f"{p} is neither old nor a full new one"
                outcomes["new"] += 1
        # leftovers of the killed write are dot files: the dataset still opens cleanly
        for p in (data / "masks").rglob("*"):
            assert p.is_dir() or p in targets or is_partial(p), p
        ds = open_dataset(data)
        assert ds.names == ["a", "b"] and ds.classes == ["heart", "lungs"]
        clean_stale(tmp_path / f"r{round_}", min_age_s=0)
        assert not [p for p in (tmp_path / f"r{round_}").rglob(".*")]
    assert outcomes["new"] > 0 and outcomes["old"] + outcomes["absent"] > 0, outcomes
