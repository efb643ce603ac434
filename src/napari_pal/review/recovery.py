"""Autosave of corrections made in the viewer, offered back when the dataset is reopened.

GUI-free. Each dataset gets its own recovery folder in the user's cache (never inside the
dataset folder), keyed by a hash of its resolved path::

    <base>/<hash>/dataset.json      which dataset this is (for people browsing the cache)
    <base>/<hash>/masks/<name>.npz  bool (C, H, W) masks + when + fingerprints of the originals
    <base>/<hash>/status.json       review status per image

Every file is written atomically, and read with ``np.load(allow_pickle=False)`` / ``json``
so a crafted recovery file cannot run code.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_pal.atomic import atomic_path, write_text
from napari_pal.data.dataset import _safe_name
from napari_pal.errors import PalError

ENV = "NAPARI_PAL_RECOVERY"
FORMAT_VERSION = 1

__all__ = ["ENV", "RecoveryStore", "default_base", "recovery_dir"]


def default_base() -> Path:
    """$NAPARI_PAL_RECOVERY, else the platform's user cache folder + napari-pal/recovery."""
    env = os.environ.get(ENV)
    if env:
        return Path(env).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA")
        root = Path(local) if local else home / "AppData" / "Local"
    elif sys.platform == "darwin":
        root = home / "Library" / "Caches"
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".cache"
    return root / "napari-pal" / "recovery"


def _resolved(dataset_root: str | os.PathLike) -> Path:
    return Path(dataset_root).expanduser().resolve()


def _key(root: Path) -> str:
    text = os.path.normcase(str(root))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:20]


def recovery_dir(dataset_root: str | os.PathLike, base: str | os.PathLike | None = None) -> Path:
    """The recovery folder of a dataset; a PalError if it would lie inside the dataset."""
    root = _resolved(dataset_root)
    base_dir = Path(base).expanduser() if base is not None else default_base()
    folder = base_dir.resolve() / _key(root)
    if folder == root or root in folder.parents:
        raise PalError(f"the recovery folder '{folder}' would lie inside the dataset folder "
                       f"'{root}'; napari-pal never writes into a dataset folder. Fix: set "
                       f"{ENV} (or the recovery base) to a folder outside the dataset.")
    return folder


def _fingerprint_file(path: Path) -> dict:
    st = path.stat()
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": h.hexdigest()}


class RecoveryStore:
    """Autosaved corrections for one dataset folder and one list of classes."""

    def __init__(self, dataset_root: str | os.PathLike, classes: Sequence[str],
                 base: str | os.PathLike | None = None) -> None:
        self.dataset_root = _resolved(dataset_root)
        self.classes = [str(c) for c in classes]
        if not self.classes:
            raise PalError("a recovery store needs the dataset's classes (got none).")
        self.folder = recovery_dir(self.dataset_root, base)

    # ------------------------------------------------------------------ paths and originals

    def _path(self, name: str) -> Path:
        return self.folder / "masks" / f"{_safe_name(name)}.npz"

    def _originals(self, name: str) -> list[Path]:
        """The image and mask files of ``name`` in the dataset (matched by file stem, or by the
        whole name for an extension-less DICOM file)."""
        root, found = self.dataset_root, []
        for folder in (root / "images", root / "masks"):
            if not folder.is_dir():
                continue
            subs = [folder] + ([d for d in sorted(folder.iterdir())
                                if d.is_dir() and not d.name.startswith(".")]
                               if folder.name == "masks" else [])
            for d in subs:
                found += [p for p in sorted(d.iterdir())
                          if p.is_file() and name in (p.stem, p.name)
                          and not p.name.startswith(".")]
        return found

    def _fingerprints(self, name: str) -> dict[str, dict]:
        out = {}
        for p in self._originals(name):
            try:
                out[p.relative_to(self.dataset_root).as_posix()] = _fingerprint_file(p)
            except OSError:
                continue
        return out

    def _write_dataset_json(self) -> None:
        p = self.folder / "dataset.json"
        if not p.is_file():
            write_text(p, json.dumps({"format": FORMAT_VERSION,
                                      "dataset": str(self.dataset_root)}, indent=1))

    # ---------------------------------------------------------------------------- masks

    def save(self, name: str, masks: np.ndarray) -> None:
        """Autosave the corrected bool (C, H, W) masks of image ``name`` (atomically)."""
        path = self._path(name)
        masks = np.asarray(masks)
        if masks.ndim != 3 or masks.shape[0] != len(self.classes):
            raise PalError(f"corrections for '{name}' have shape {masks.shape}, expected "
                           f"({len(self.classes)}, H, W) for classes {self.classes}.")
        meta = {"format": FORMAT_VERSION, "dataset": str(self.dataset_root), "name": name,
                "classes": self.classes, "saved": time.time(),
                "originals": self._fingerprints(name)}
        self._write_dataset_json()
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, masks=masks.astype(bool), meta=np.array(json.dumps(meta)))

    def _read(self, name: str, *, with_masks: bool) -> tuple[dict, np.ndarray | None]:
        path = self._path(name)
        if not path.is_file():
            raise PalError(f"no autosaved corrections for '{name}' in '{path.parent}'.")
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"][()]))
                masks = np.asarray(z["masks"]) if with_masks else None
            if not isinstance(meta, dict):
                raise ValueError("meta is not a JSON object")
        except Exception as err:  # noqa: BLE001 - zip, npy, json, pickle refusal ...
            raise PalError(f"cannot read the autosaved corrections '{path}' ({type(err).__name__}:"
                           f" {str(err)[:200]}); the file is damaged or not napari-pal's. Fix: "
                           f"discard it (delete the file).") from None
        if meta.get("format") != FORMAT_VERSION:
            raise PalError(f"'{path}' has an unknown format. Fix: discard it (delete the file).")
        if meta.get("dataset") != str(self.dataset_root) or meta.get("name") != name:
            raise PalError(f"'{path}' was autosaved for '{meta.get('name')}' in "
                           f"'{meta.get('dataset')}', not for '{name}' in "
                           f"'{self.dataset_root}'. Fix: discard it (delete the file).")
        if meta.get("classes") != self.classes:
            raise PalError(f"the corrections of '{name}' in '{path}' were autosaved for classes "
                           f"{meta.get('classes')}, but the dataset is opened with classes "
                           f"{self.classes}. Fix: open it with those classes, or discard them.")
        if masks is not None and (masks.dtype != bool or masks.ndim != 3
                                  or masks.shape[0] != len(self.classes)):
            raise PalError(f"'{path}' holds masks of shape {masks.shape} ({masks.dtype}), "
                           f"expected bool ({len(self.classes)}, H, W). Fix: discard it.")
        return meta, masks

    def pending(self) -> list[str]:
        """Names with autosaved corrections that can be loaded for this dataset and classes.

        Files that are damaged, or were saved for other classes, are not offered.
        """
        folder = self.folder / "masks"
        if not folder.is_dir():
            return []
        names = []
        for p in sorted(folder.iterdir()):
            if p.name.startswith(".") or p.suffix != ".npz" or not p.is_file():
                continue
            try:
                self._read(p.stem, with_masks=True)  # offer only what load() will accept
            except PalError:
                continue
            names.append(p.stem)
        return names

    def load(self, name: str) -> np.ndarray:
        """The autosaved bool (C, H, W) masks of ``name``."""
        masks = self._read(name, with_masks=True)[1]
        assert masks is not None
        return masks

    def saved_at(self, name: str) -> float:
        """When the corrections of ``name`` were autosaved (seconds since the epoch)."""
        return float(self._read(name, with_masks=False)[0]["saved"])

    def is_stale(self, name: str) -> bool:
        """Whether the image or mask files of ``name`` changed on disk since the autosave."""
        recorded = self._read(name, with_masks=False)[0].get("originals", {})
        current = {}
        for p in self._originals(name):
            rel = p.relative_to(self.dataset_root).as_posix()
            old = recorded.get(rel)
            try:
                st = p.stat()
                if old and st.st_size == old["size"] and st.st_mtime_ns == old["mtime_ns"]:
                    current[rel] = old  # unchanged size and time: skip hashing
                else:
                    current[rel] = _fingerprint_file(p)
            except OSError:
                return True
        if set(current) != set(recorded):
            return True
        return any(current[k]["sha256"] != recorded[k]["sha256"] for k in current)

    def discard(self, name: str | None = None) -> None:
        """Forget the autosave of one image, or everything for this dataset (``None``)."""
        if name is not None:
            self._path(name).unlink(missing_ok=True)
            return
        folder = self.folder / "masks"
        if folder.is_dir():
            for p in folder.iterdir():
                if p.is_file() and (p.suffix == ".npz" or p.name.startswith(".")):
                    p.unlink(missing_ok=True)
            try:
                folder.rmdir()
            except OSError:
                pass
        for p in (self.folder / "status.json", self.folder / "dataset.json"):
            p.unlink(missing_ok=True)
        try:
            self.folder.rmdir()
        except OSError:
            pass

    # --------------------------------------------------------------------------- status

    def save_status(self, status: dict[str, str]) -> None:
        """Autosave the review status of each image (name -> status), atomically."""
        clean = {}
        for k, v in dict(status).items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise PalError(f"review status must map names to text, got {k!r}: {v!r}.")
            clean[k] = v
        self._write_dataset_json()
        write_text(self.folder / "status.json", json.dumps(
            {"format": FORMAT_VERSION, "dataset": str(self.dataset_root), "status": clean},
            ensure_ascii=False, indent=1))

    def load_status(self) -> dict[str, str]:
        """The autosaved review status ({} when there is none)."""
        path = self.folder / "status.json"
        if not path.is_file():
            return {}
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            status = doc["status"]
            ok = (doc.get("format") == FORMAT_VERSION and isinstance(status, dict)
                  and all(isinstance(k, str) and isinstance(v, str) for k, v in status.items()))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise PalError(f"cannot read the autosaved review status '{path}' ({err}). "
                           "Fix: delete the file.") from None
        if not ok:
            raise PalError(f"'{path}' is not a napari-pal review status. Fix: delete the file.")
        if doc.get("dataset") != str(self.dataset_root):
            return {}
        return dict(status)
