"""Annotators' work survives: autosaved corrections come back, untrusted files run no code,
exports stay in their folder, and the bad inputs not covered by test_bad_input.py give one
clear error (or work) without touching the input folder."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from napari_pal.cli import main
from napari_pal.data.dataset import Layout, open_dataset, write_masks
from napari_pal.errors import DatasetError, PalError
from napari_pal.review import recovery
from napari_pal.review.recovery import RecoveryStore, recovery_dir

CLASSES = ["heart", "lungs"]


def _snapshot(root: Path) -> dict[str, str]:
    """Every path under root with a hash of each file's bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            if p.is_file() else "dir" for p in sorted(root.rglob("*"))}


def _masks(hw=(16, 20), shift=0) -> np.ndarray:
    m = np.zeros((2, *hw), bool)
    m[0, 2 + shift:8 + shift, 2:8] = m[1, 5:12, 4:15] = True
    return m


def _dataset(root: Path, names=("a", "b"), hw=(16, 20), classes=CLASSES) -> Path:
    for n in names:
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full(hw, 100, np.uint8)).save(root / "images" / f"{n}.png")
        write_masks(root, Layout.CLASS_FOLDERS, classes, n, _masks(hw))
    return root


@pytest.fixture
def cache(tmp_path: Path, monkeypatch) -> Path:
    base = tmp_path / "cache"
    monkeypatch.setenv(recovery.ENV, str(base))
    return base


# ------------------------------------------------------------------------ recovery folder

def test_recovery_dir_default_locations(tmp_path: Path, monkeypatch) -> None:
    data = _dataset(tmp_path / "data")
    monkeypatch.setenv(recovery.ENV, str(tmp_path / "env"))
    assert recovery_dir(data).parent == tmp_path / "env"
    monkeypatch.delenv(recovery.ENV)
    monkeypatch.setattr(recovery.sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert recovery_dir(data).parent == tmp_path / "xdg" / "napari-pal" / "recovery"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert recovery_dir(data).parent == tmp_path / "home" / ".cache" / "napari-pal" / "recovery"
    monkeypatch.setattr(recovery.sys, "platform", "darwin")
    assert recovery.default_base() == tmp_path / "home" / "Library" / "Caches" / "napari-pal" \
        / "recovery"
    monkeypatch.setattr(recovery.sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert recovery.default_base() == tmp_path / "local" / "napari-pal" / "recovery"


def test_recovery_dir_is_per_dataset_and_never_inside_it(tmp_path: Path, cache: Path) -> None:
    a, b = _dataset(tmp_path / "a"), _dataset(tmp_path / "b")
    assert recovery_dir(a) != recovery_dir(b)
    assert recovery_dir(a) == recovery_dir(tmp_path / "b" / ".." / "a")  # resolved path
    with pytest.raises(PalError, match="outside the dataset"):
        recovery_dir(a, base=a / "recovery")
    with pytest.raises(PalError, match="outside the dataset"):
        RecoveryStore(a, CLASSES, base=a)


# ------------------------------------------------------------------------ recovery store

def test_corrections_round_trip_and_leave_the_dataset_untouched(tmp_path: Path,
                                                                cache: Path) -> None:
    names = ["a", "chest x-ray 1", "Röntgen_é 胸部", "img.v2"]
    data = _dataset(tmp_path / "dätä set", names=names)
    before = _snapshot(data)
    store = RecoveryStore(data, CLASSES)
    assert store.pending() == [] and store.load_status() == {}
    fixed = {n: _masks(shift=k) for k, n in enumerate(names)}
    for n in names:
        store.save(n, fixed[n])
    store.save("a", fixed["a"] | _masks(shift=3))  # a later autosave replaces the earlier
    store.save_status({"a": "accepted", "Röntgen_é 胸部": "needs work"})
    assert sorted(store.pending()) == sorted(names)
    for n in names[1:]:
        out = store.load(n)
        assert out.dtype == bool and np.array_equal(out, fixed[n])
        assert not store.is_stale(n)
    assert np.array_equal(store.load("a"), fixed["a"] | _masks(shift=3))
    assert store.load_status() == {"a": "accepted", "Röntgen_é 胸部": "needs work"}
    assert store.saved_at("a") > 0
    assert _snapshot(data) == before  # nothing written into the dataset
    assert store.folder.parent == cache and not [p for p in store.folder.rglob(".*")]


def test_offered_back_for_the_same_dataset_only(tmp_path: Path, cache: Path) -> None:
    data = _dataset(tmp_path / "data")
    RecoveryStore(data, CLASSES).save("a", _masks(shift=2))
    RecoveryStore(data, CLASSES).save_status({"a": "fixed"})
    again = RecoveryStore(tmp_path / "x" / ".." / "data", CLASSES)  # the same folder reopened
    assert again.pending() == ["a"] and np.array_equal(again.load("a"), _masks(shift=2))
    assert again.load_status() == {"a": "fixed"}
    other = RecoveryStore(_dataset(tmp_path / "copy"), CLASSES)  # same names, another folder
    assert other.pending() == [] and other.load_status() == {}
    with pytest.raises(PalError, match="no autosaved corrections"):
        other.load("a")


def test_stale_when_the_originals_changed_on_disk(tmp_path: Path, cache: Path) -> None:
    data = _dataset(tmp_path / "data")
    store = RecoveryStore(data, CLASSES)
    store.save("a", _masks(shift=1))
    store.save("b", _masks(shift=1))
    p = data / "masks" / "lungs" / "a.png"
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9))  # touched only
    assert not store.is_stale("a")
    write_masks(data, Layout.CLASS_FOLDERS, CLASSES, "a", _masks(shift=4))  # edited elsewhere
    assert store.is_stale("a") and not store.is_stale("b")
    (data / "images" / "b.png").unlink()
    Image.fromarray(np.zeros((16, 20), np.uint8)).save(data / "images" / "b.tif")
    assert store.is_stale("b")  # the image was replaced by another file


def test_discard_one_or_all(tmp_path: Path, cache: Path) -> None:
    data = _dataset(tmp_path / "data", names=("a", "b", "c"))
    store = RecoveryStore(data, CLASSES)
    for n in "abc":
        store.save(n, _masks())
    store.save_status({"a": "ok"})
    store.discard("b")
    assert store.pending() == ["a", "c"]
    store.discard("b")  # already gone: fine
    store.discard()
    assert store.pending() == [] and store.load_status() == {} and not store.folder.exists()


def test_other_classes_are_not_offered(tmp_path: Path, cache: Path) -> None:
    data = _dataset(tmp_path / "data")
    RecoveryStore(data, CLASSES).save("a", _masks())
    store = RecoveryStore(data, ["heart", "lungs", "clavicles"])
    assert store.pending() == []
    with pytest.raises(PalError, match=r"autosaved for classes \['heart', 'lungs'\]"):
        store.load("a")
    with pytest.raises(PalError, match="expected"):
        store.save("a", _masks())  # 2 channels for 3 classes


def test_unsafe_names_are_refused(tmp_path: Path, cache: Path) -> None:
    store = RecoveryStore(_dataset(tmp_path / "data"), CLASSES)
    for bad in ["../x", "a/b", "a\\b", "..", "", ".hidden", "/abs"]:
        with pytest.raises(PalError, match="plain file name"):
            store.save(bad, _masks())
        with pytest.raises(PalError):
            store.load(bad)
    assert not (cache / "x.npz").exists() and not (tmp_path / "x.npz").exists()


class _Boom:
    def __reduce__(self):
        return (print, ("pwned",))


def test_crafted_recovery_files_run_no_code(tmp_path: Path, cache: Path, capsys) -> None:
    data = _dataset(tmp_path / "data", names=("a", "b", "c"))
    store = RecoveryStore(data, CLASSES)
    store.save("a", _masks())
    good = store.folder / "masks" / "a.npz"
    with np.load(good, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"][()]))
    meta = np.array(json.dumps({**meta, "name": "b"}))  # valid metadata for "b"
    # an npz whose masks are a pickled object array
    buf = io.BytesIO()
    np.savez(buf, masks=np.array([_Boom()], dtype=object), meta=meta)
    (store.folder / "masks" / "b.npz").write_bytes(buf.getvalue())
    # a bare pickle named .npz
    (store.folder / "masks" / "c.npz").write_bytes(pickle.dumps(_Boom()))
    for n in "bc":
        with pytest.raises(PalError, match="damaged or not napari-pal's"):
            store.load(n)
    assert store.pending() == ["a"]  # the crafted ones are never offered
    # a zip with a member that is not an array
    with zipfile.ZipFile(store.folder / "masks" / "b.npz", "w") as z:
        z.writestr("meta.npy", b"garbage")
    with pytest.raises(PalError, match="b.npz"):
        store.load("b")
    (store.folder / "status.json").write_text('{"format": 1, "status": [1, 2]}')
    with pytest.raises(PalError, match="status.json"):
        store.load_status()
    assert "pwned" not in capsys.readouterr().out


# ------------------------------------------------------------------------ export names

def test_export_names_cannot_escape_the_chosen_folder(tmp_path: Path) -> None:
    out = tmp_path / "box" / "out"
    out.mkdir(parents=True)
    before = _snapshot(tmp_path)
    for bad in ["../evil", "../../evil", "a/../../evil", "..", "/tmp/evil", "..\\evil"]:
        for layout in Layout:
            with pytest.raises(DatasetError, match="plain file name"):
                write_masks(out, layout, CLASSES, bad, _masks())
    with pytest.raises(DatasetError, match="plain file name"):  # a class named like a path
        write_masks(out, Layout.CLASS_FOLDERS, ["../heart", "lungs"], "a", _masks())
    assert _snapshot(tmp_path) == before


# ------------------------------------------------------------- inputs that must just work

@pytest.mark.parametrize("kind", ["png16", "tiff16", "rgb", "rgba", "tiff_rgb"])
def test_16_bit_and_rgb_images_work(tmp_path: Path, kind: str) -> None:
    ramp = np.linspace(0, 1, 16 * 20).reshape(16, 20)
    if kind in ("png16", "tiff16"):
        arr = (ramp * 65535).astype(np.uint16)
    else:
        grey = (ramp * 255).astype(np.uint8)
        arr = np.stack([grey] * (4 if kind == "rgba" else 3), axis=-1)
    (tmp_path / "images").mkdir()
    p = tmp_path / "images" / f"a.{'tif' if kind.startswith('tiff') else 'png'}"
    if p.suffix == ".tif":
        tifffile.imwrite(p, arr, photometric="rgb" if arr.ndim == 3 else "minisblack")
    else:
        Image.fromarray(arr).save(p)
    write_masks(tmp_path, Layout.CLASS_FOLDERS, CLASSES, "a", _masks())
    before = _snapshot(tmp_path)
    ds = open_dataset(tmp_path)
    img = ds.read_image(0)
    assert img.shape == (16, 20) and img.dtype == np.float32
    np.testing.assert_allclose(img, ramp, atol=1 / 255 + 1e-6)
    assert np.array_equal(ds.read_masks(0), _masks())
    assert _snapshot(tmp_path) == before


def test_names_with_spaces_and_non_ascii_work_everywhere(tmp_path: Path, cache: Path) -> None:
    names = ["chest x-ray 1", "Röntgen_é 胸部", "ẞ ñ (copy).v2"]
    classes = ["lung ü", "heart"]
    data = _dataset(tmp_path / "folder with spaces ü", names=names, classes=classes)
    before = _snapshot(data)
    ds = open_dataset(data)
    assert sorted(ds.names) == sorted(names) and ds.classes == sorted(classes)
    for i in range(len(ds)):
        assert ds.read_masks(i).shape == (2, 16, 20)
        write_masks(tmp_path / "exported", ds.layout, ds.classes, ds.names[i], ds.read_masks(i))
    assert _snapshot(data) == before
    assert sorted(p.stem for p in (tmp_path / "exported" / "masks" / "heart").iterdir()) \
        == sorted(names)


# ------------------------------------------------------- unknown class in a later session

def test_unknown_class_folder_in_a_later_session_cli(tmp_path: Path, capsys) -> None:
    first = _dataset(tmp_path / "session1", names=("a", "b", "c", "d"))
    run = tmp_path / "run"
    assert main(["train", str(first), "--out", str(run), "--epochs", "1", "--size", "32",
                 "--width", "4", "--batch-size", "2", "--warmup", "0", "--no-augment",
                 "--precision", "fp32", "--device", "cpu", "--threads", "1"]) == 0
    later = _dataset(tmp_path / "session2", names=("e", "f"), classes=CLASSES)
    liver = later / "masks" / "liver"
    liver.mkdir()
    for n in ("e", "f"):
        Image.fromarray(_masks()[0].astype(np.uint8) * 255).save(liver / f"{n}.png")
    before = _snapshot(later)
    capsys.readouterr()
    out = tmp_path / "scores.csv"
    assert main(["score", str(run), str(later), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(liver) in err and "not one of the expected classes" in err
    assert "heart" in err and "lungs" in err and "rename or remove" in err.lower()
    assert not out.exists() and _snapshot(later) == before
    # the same folder without the extra class scores fine
    assert main(["score", str(run), str(first), "--out", str(out)]) == 0 and out.is_file()


# ------------------------------------------------------------- loader fuzzing, extended

_DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "int64", "float16",
           "float32", "float64", "bool", "complex64"]


def _random_array(data) -> np.ndarray:
    shape = tuple(data.draw(st.lists(st.integers(1, 12), min_size=1, max_size=4)))
    dtype = np.dtype(data.draw(st.sampled_from(_DTYPES)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    kind = data.draw(st.sampled_from(["binary", "labels", "noise", "extreme", "nan"]))
    if kind == "binary":
        x = rng.integers(0, 2, shape) * 255
    elif kind == "labels":
        x = rng.integers(0, 4, shape)
    elif kind == "extreme":
        info = np.iinfo(dtype) if dtype.kind in "iu" else None
        x = np.full(shape, info.max if info else 1e30)
        x.flat[0] = info.min if info else -1e30
    else:
        x = rng.normal(0, 1000, shape)
        if kind == "nan" and dtype.kind in "fc":
            x.flat[0] = np.nan
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return x.astype(dtype)


def _file_bytes(data) -> bytes:
    """A valid PNG or TIFF of a random array, maybe truncated or with bytes overwritten."""
    arr = _random_array(data)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tifffile's notes on how it stores odd shapes
        return _damaged(data, arr, buf)


def _damaged(data, arr: np.ndarray, buf: io.BytesIO) -> bytes:
    try:
        if data.draw(st.booleans()):
            Image.fromarray(arr).save(buf, format="PNG")
        else:
            tifffile.imwrite(buf, arr)
    except Exception:  # noqa: BLE001 - the writers refuse some shapes/dtypes: use TIFF or raw
        buf = io.BytesIO()
        try:
            tifffile.imwrite(buf, arr)
        except Exception:  # noqa: BLE001
            buf = io.BytesIO(arr.tobytes()[:200])
    raw = bytearray(buf.getvalue())
    damage = data.draw(st.sampled_from(["none", "truncate", "overwrite"]))
    if damage == "truncate" and raw:
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif damage == "overwrite" and raw:
        for _ in range(data.draw(st.integers(1, 8))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    return bytes(raw)


def _sane_files(data, root: Path, layout: str) -> None:
    """A valid dataset with random sizes, pixel types and formats: it must load cleanly."""
    h, w = data.draw(st.integers(2, 24)), data.draw(st.integers(2, 24))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    for n in ("a", "b"):
        dtype = data.draw(st.sampled_from(["uint8", "uint16", "int16", "float32", "float64",
                                           "bool"]))
        shape = data.draw(st.sampled_from([(h, w)] if dtype == "bool" else
                                          [(h, w), (h, w, 3), (h, w, 4)]))  # no 1-bit RGB
        img = (rng.random(shape) * (255 if dtype != "bool" else 1.5)).astype(dtype)
        if data.draw(st.booleans()) and dtype in ("uint8", "uint16") and len(shape) == 2 \
                or dtype == "uint8":
            Image.fromarray(img).save(root / "images" / f"{n}.png")
        else:
            tifffile.imwrite(root / "images" / f"{n}.tif", img,
                             photometric="rgb" if len(shape) == 3 else "minisblack")
        labels = rng.integers(0, 3, (h, w)).astype(np.uint8)
        labels.flat[:2] = [1, 2]  # no class is empty
        if layout == "loose":
            Image.fromarray(labels).save(root / "masks" / f"{n}.png")
            continue
        for k, c in enumerate(["x", "y"], start=1):
            m = (labels == k).astype(np.uint8) * data.draw(st.sampled_from([1, 255]))
            if data.draw(st.booleans()):
                Image.fromarray(m).save(root / "masks" / c / f"{n}.png")
            else:
                tifffile.imwrite(root / "masks" / c / f"{n}.tif", m.astype(bool))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_loader_fuzz_shapes_dtypes_and_damaged_bytes(tmp_path_factory, data) -> None:
    """Random shapes (1-4 dims), 12 dtypes, and valid files truncated or overwritten at
    random bytes: the loader gives a clean result or a DatasetError, and writes nothing;
    valid folders of random sizes, pixel types and formats always load."""
    root = tmp_path_factory.mktemp("fuzz")
    layout = data.draw(st.sampled_from(["class", "loose"]))
    sane = data.draw(st.booleans())
    for c in (["x", "y"] if layout == "class" else [""]):
        (root / "masks" / c).mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir()
    if sane:
        _sane_files(data, root, layout)
    for n in ("a", "b") if not sane else ():
        (root / "images" / f"{n}.{data.draw(st.sampled_from(['png', 'tif']))}").write_bytes(
            _file_bytes(data))
        for c in (["x", "y"] if layout == "class" else [""]):
            suffix = data.draw(st.sampled_from(["png", "tif"]))
            (root / "masks" / c / f"{n}.{suffix}").write_bytes(_file_bytes(data))
    before = _snapshot(root)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # resampled masks; PIL on damaged EXIF
            ds = open_dataset(root, check=data.draw(st.booleans()))
            for i in range(len(ds)):
                img, masks = ds.read_image(i), ds.read_masks(i)
                assert img.dtype == np.float32 and img.ndim == 2
                assert np.isfinite(img).all() and 0.0 <= img.min() and img.max() <= 1.0
                assert masks.dtype == bool and masks.shape == (len(ds.classes), *img.shape)
    except DatasetError as err:
        assert not sane, f"a valid dataset was refused: {err}"
        assert str(root) in str(err)  # names the folder / file
    assert _snapshot(root) == before
