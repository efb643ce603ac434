"""Kinds of annotator error, applied to real masks: the paper's and the ones it leaves out.

The paper spoils masks only by eroding or dilating them. Annotators also leave a part out
(one lung not drawn), leave a whole structure out, spill over, add a stray blob, draw the
mask of another image, shift it, draw a ragged outline, swap the left and right parts or
draw one part twice. A quality score must find every kind, so the benchmark spoils masks
with each and reports each separately (``bench.errorkinds``).

Every kind takes one bool (H, W) mask, a size ``pixels`` (radius, shift or amplitude in
pixels of the stored mask; unused by kinds without a size) and a seeded generator, and
returns the spoilt mask with a short ``detail`` for the truth file. Pure numpy/scipy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

PAPER_KINDS = ("erode", "dilate")
#: every kind, in the order of the benchmark's tables
KINDS = ("erode", "dilate", "ragged", "shift", "wrong_image", "omit_part", "omit_class",
         "spill", "blob", "swap", "duplicate")
#: kinds that need a structure of (at least) two parts, e.g. left and right lung
TWO_PART_KINDS = ("omit_part", "swap", "duplicate")
#: a connected component smaller than this share of the mask is a speck, not a part
MIN_PART_SHARE = 0.1
#: kinds besides the paper's whose size is drawn from ``pixels`` (their records keep it)
SIZED_KINDS = ("ragged", "shift", "spill", "blob")


@dataclass(frozen=True)
class CorruptionRecord:
    """One row of corruption.csv: what was done to one class of one image."""

    name: str
    cls: str
    operation: str  # a kind of KINDS, or "none"
    pixels: int
    detail: str = ""


def morph(mask: np.ndarray, op: str, radius: int) -> np.ndarray:
    """Erode or dilate by a disk of ``radius`` px (exact Euclidean distance transform,
    equal to skimage's disk morphology; outside the image counts as foreground for erosion)."""
    if radius == 0 or mask.ndim != 2:
        return mask.copy()
    if op == "dilate":
        return _grow(mask, radius)
    return ~_grow(~mask, radius)


def _grow(mask: np.ndarray, radius: float) -> np.ndarray:
    if not mask.any():
        return mask.copy()
    return ndimage.distance_transform_edt(~mask) <= radius


def parts(mask: np.ndarray) -> list[np.ndarray]:
    """The structure's parts (connected components above MIN_PART_SHARE of its area),
    ordered left to right by their centre column."""
    labels, n = ndimage.label(mask)
    if n == 0:
        return []
    sizes = np.bincount(labels.ravel())[1:]
    keep = [k + 1 for k in range(n) if sizes[k] >= MIN_PART_SHARE * sizes.sum()]
    found = [labels == k for k in keep]
    return sorted(found, key=lambda p: float(np.nonzero(p)[1].mean()))


def applicable(kind: str, mask: np.ndarray, donor: np.ndarray | None = None) -> bool:
    """Whether ``kind`` changes this mask at all (no part to leave out of a heart, no
    wrong image without another image's mask)."""
    if kind in PAPER_KINDS:
        return True  # the paper's rule: every class of a picked image, even an empty one
    if not mask.any():
        return False
    if kind in TWO_PART_KINDS:
        return len(parts(mask)) >= 2
    if kind == "wrong_image":
        return donor is not None and not np.array_equal(_fit(donor, mask.shape), mask)
    return kind in KINDS


def _fit(donor: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Another image's mask at this mask's size (nearest neighbour)."""
    donor = np.asarray(donor, bool)
    if donor.shape == tuple(shape):
        return donor
    zoom = [s / d for s, d in zip(shape, donor.shape)]
    out = ndimage.zoom(donor.astype(np.uint8), zoom, order=0).astype(bool)
    fitted = np.zeros(shape, bool)
    h, w = min(shape[0], out.shape[0]), min(shape[1], out.shape[1])
    fitted[:h, :w] = out[:h, :w]
    return fitted


def _mirror(mask: np.ndarray, cx: float) -> np.ndarray:
    """Reflect the columns about x = cx (what falls outside the image is lost)."""
    w = mask.shape[1]
    src = np.rint(2 * cx - np.arange(w)).astype(int)
    ok = (src >= 0) & (src < w)
    out = np.zeros_like(mask)
    out[:, ok] = mask[:, src[ok]]
    return out


def _shifted(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(mask)
    h, w = mask.shape
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = mask[ys, xs]
    return out


def _disk(shape: tuple[int, int], cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.ogrid[:shape[0], :shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def _ragged(mask: np.ndarray, r: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Move the outline in and out by a spatially correlated random field of amplitude r:
    neighbouring outline pixels move together, as in Yao et al.'s (ICLR 2023) Markov
    boundary noise, so the outline turns wavy rather than uniformly thicker or thinner."""
    sigma = max(3.0, min(mask.shape) / 48)
    field = ndimage.gaussian_filter(rng.standard_normal(mask.shape), sigma)
    field = np.clip(field / (field.std() + 1e-12), -1.5, 1.5) * (r / 1.5)
    inside = ndimage.distance_transform_edt(mask) - ndimage.distance_transform_edt(~mask)
    return inside > field, f"sigma={sigma:.1f}"


def apply_kind(kind: str, mask: np.ndarray, pixels: int, rng: np.random.Generator,
               donor: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """(spoilt mask, detail) for one kind; see the module docstring. ``donor`` is another
    image's mask of the same class (for ``wrong_image``)."""
    mask = np.asarray(mask, bool)
    if kind in PAPER_KINDS:
        return morph(mask, kind, pixels), ""
    if kind not in KINDS:
        raise ValueError(f"unknown error kind {kind!r}; use one of {KINDS}")
    if kind == "ragged":
        return _ragged(mask, pixels, rng)
    if kind == "shift":
        angle = rng.uniform(0, 2 * np.pi)
        dy, dx = int(round(pixels * np.sin(angle))), int(round(pixels * np.cos(angle)))
        return _shifted(mask, dy, dx), f"dy={dy},dx={dx}"
    if kind == "wrong_image":
        if donor is None:
            raise ValueError("wrong_image needs another image's mask (donor)")
        return _fit(donor, mask.shape), ""
    if kind == "omit_class":
        return np.zeros_like(mask), ""
    if kind in ("spill", "blob"):
        return _add_blob(kind, mask, pixels, rng)
    found = parts(mask)
    if len(found) < 2:
        raise ValueError(f"{kind} needs a structure of two parts; this mask has {len(found)}")
    left, right = found[0], found[-1]
    k = int(rng.integers(2))
    side = ("left", "right")[k]
    if kind == "omit_part":
        return mask & ~(left, right)[k], f"part={side}"
    cx = (np.nonzero(left)[1].mean() + np.nonzero(right)[1].mean()) / 2
    if kind == "swap":
        return _mirror(mask, cx), ""
    kept = (left, right)[k]  # duplicate: the other part replaced by this one, mirrored
    return (mask & ~(left, right)[1 - k]) | _mirror(kept, cx), f"kept={side}"


def _add_blob(kind: str, mask: np.ndarray, r: int, rng: np.random.Generator
              ) -> tuple[np.ndarray, str]:
    """spill: a disk of radius r centred on the outline (half of it spills out);
    blob: a disk of radius r away from the structure (a stray stroke)."""
    r = max(int(r), 1)
    if kind == "spill":
        edge = np.argwhere(mask & ~ndimage.binary_erosion(mask, border_value=0))
        cy, cx = edge[int(rng.integers(len(edge)))]
    else:
        far = ndimage.distance_transform_edt(~mask) > 2 * r
        far[:r, :] = far[-r:, :] = False
        far[:, :r] = far[:, -r:] = False
        spots = np.argwhere(far)
        if len(spots) == 0:
            spots = np.argwhere(~mask)
        cy, cx = spots[int(rng.integers(len(spots)))]
    return mask | _disk(mask.shape, cy, cx, r), f"at={cy},{cx}"


def moved(before: np.ndarray, after: np.ndarray) -> float:
    """How far the outline moved: the Hausdorff distance between the two masks' outlines
    in pixels (inf where exactly one is empty, 0 where both are)."""
    if not before.any() and not after.any():
        return 0.0
    if not before.any() or not after.any():
        return float("inf")
    ea = before & ~ndimage.binary_erosion(before, border_value=0)
    eb = after & ~ndimage.binary_erosion(after, border_value=0)
    return float(max(ndimage.distance_transform_edt(~eb)[ea].max(),
                     ndimage.distance_transform_edt(~ea)[eb].max()))


def pick(names: Sequence[str], fraction: float, rng: np.random.Generator) -> set[str]:
    """round(fraction * n) names drawn without replacement (the corrupt command's rule)."""
    k = int(round(fraction * len(names)))
    return set(rng.choice(np.array(list(names), dtype=object), size=k, replace=False).tolist())


def spoil(names: Sequence[str], classes: Sequence[str], read: Callable[[int], np.ndarray],
          picked: set[str], pixels: tuple[int, int], kinds: Sequence[str],
          rng: np.random.Generator, classes_per_image: tuple[int, int] | None = None,
          donors: Sequence[str] | None = None,
          ) -> tuple[dict[str, np.ndarray], list[CorruptionRecord]]:
    """Spoil the masks of the ``picked`` images: (name -> spoilt (C, H, W) masks, records).

    ``read(i)`` gives image i's bool (C, H, W) masks. ``classes_per_image`` None: every
    class gets a kind drawn at random (the paper's rule; with the paper's kinds it draws
    the same random numbers as the corrupt command always did); (lo, hi): lo..hi classes
    drawn at random get one, the others stay as they are, and each gets the least used
    kind so far (ties drawn at random), so that every kind is about equally frequent
    for the benchmark's per-kind tables. A kind that cannot change a class (no second
    lung to leave out) is not drawn for it. ``donors``: the images whose masks
    ``wrong_image`` may use (default: all).
    """
    lo, hi = pixels
    donors = list(names if donors is None else donors)
    used = dict.fromkeys(kinds, 0)
    masks_out: dict[str, np.ndarray] = {}
    records: list[CorruptionRecord] = []
    for i, name in enumerate(names):
        if name not in picked:
            records += [CorruptionRecord(name, c, "none", 0) for c in classes]
            continue
        masks = np.asarray(read(i), bool).copy()
        chosen = range(len(classes))
        if classes_per_image is not None:
            n = int(rng.integers(classes_per_image[0], classes_per_image[1] + 1))
            chosen = sorted(rng.choice(len(classes), size=min(n, len(classes)),
                                       replace=False).tolist())
        for c, cls in enumerate(classes):
            if c not in chosen:
                records.append(CorruptionRecord(name, cls, "none", 0))
                continue
            donor_name, donor = None, None
            if "wrong_image" in kinds:
                others = [d for d in donors if d != name]
                donor_name = others[int(rng.integers(len(others)))] if others else None
                if donor_name is not None:
                    donor = np.asarray(read(names.index(donor_name)), bool)[c]
            can = [k for k in kinds if applicable(k, masks[c], donor)]
            if not can:
                records.append(CorruptionRecord(name, cls, "none", 0))
                continue
            if classes_per_image is not None:
                can = [k for k in can if used[k] == min(used[k] for k in can)]
            while can:
                kind, r = str(can[int(rng.integers(len(can)))]), int(rng.integers(lo, hi + 1))
                spoilt, detail = apply_kind(kind, masks[c], r, rng, donor)
                if kind in PAPER_KINDS or moved(masks[c], spoilt) >= lo:
                    break
                can = [k for k in can if k != kind]
            if not can:
                records.append(CorruptionRecord(name, cls, "none", 0))
                continue
            used[kind] += 1
            masks[c] = spoilt
            if kind == "wrong_image":
                detail = f"from={donor_name}"
            sized = kind in PAPER_KINDS or kind in SIZED_KINDS
            records.append(CorruptionRecord(name, cls, kind, r if sized else 0, detail))
        masks_out[name] = masks
    return masks_out, records


__all__ = ["KINDS", "PAPER_KINDS", "TWO_PART_KINDS", "CorruptionRecord", "applicable",
           "apply_kind", "morph", "moved", "parts", "pick", "spoil"]
