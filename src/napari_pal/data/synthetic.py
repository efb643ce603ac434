"""Synthetic chest radiographs with lung, heart and clavicle masks, some deliberately wrong.

``make_sample_dataset`` writes a small data set in the class-folder layout the rest of the
package reads::

    out/images/chest_000.png              8-bit grey radiograph
    out/masks/<class>/chest_000.png       0 / 255, one per class (classes overlap)
    out/classes.txt                       "lungs", "heart", "clavicles", one a line
    out/corruption.csv                    name,class,operation,pixels (the ground truth of
                                          which masks are wrong, one row per image and class)

The images follow the display convention of posterior-anterior chest films: the patient
faces the viewer, so the heart projects mostly to the image's right of the midline, the
right hemidiaphragm (image left) sits a little higher than the left, and the clavicles cross
the lung apices, their masks lying over the lungs as in the SCR annotations of JSRT.

The clavicles are bony bands about 10 px thick (at 256 px) crossing the lung apices; their
masks (the part of the bone over the lung fields) cover about 1.5 % of the image, like the
SCR clavicle masks of JSRT (about 2 %), so a segmenter learns them as it learns the lungs.

A ``bad_fraction`` of the images get one or more class masks spoilt in the ways annotators
spoil them, each by several pixels at 256 px (scaled with ``size``): ``erode`` (under-drawn
by 4-8 px, 2-3 px for the thin clavicles), ``dilate`` (over-drawn by 5-10 px, 4-7 px for
clavicles), ``shift`` (6-12 px), ``cut`` (20-45 % of one structure missing), ``blob`` (a
spill of 8-14 px radius onto the neighbourhood) and, rarely, ``missing`` (one structure of
the class left out: one lung, one clavicle, or the heart). ``pixels`` in corruption.csv
means what it means in the ``corrupt`` command's output: the radius in px of the spoil as
drawn (the disk of ``erode``/``dilate``, the distance of ``shift``, the mean radius of
``blob``), empty for ``cut`` and ``missing``, which have no radius, and 0 for "none".

Only numpy and scikit-image are used; no GUI.  Output depends only on the arguments:
image ``i`` is drawn from ``numpy.random.default_rng([seed, i])``, and which images are
spoilt from ``default_rng(seed)``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from skimage import io as skio
from skimage.filters import gaussian
from skimage.measure import label
from skimage.morphology import dilation, disk, erosion

from napari_pal.atomic import atomic_path, write_text

CLASSES: tuple[str, ...] = ("lungs", "heart", "clavicles")
OPERATIONS: tuple[str, ...] = ("erode", "dilate", "shift", "cut", "blob", "missing")
_OP_WEIGHTS = np.array([0.19, 0.19, 0.19, 0.17, 0.17, 0.09])

Row = tuple[str, str, str, "int | str"]


# --------------------------------------------------------------------------- anatomy


def _wobble(rng: np.random.Generator, amplitude: float):
    """A smooth random function of t in [0, 1] with values in about +-amplitude."""
    k = np.arange(1, 4)
    a = rng.normal(0.0, amplitude / k)
    phase = rng.uniform(0.0, 2 * np.pi, size=k.size)

    def f(t: np.ndarray) -> np.ndarray:
        t = np.asarray(t)[..., None]
        return (a * np.sin(2 * np.pi * k * t + phase)).sum(-1)

    return f


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Low-frequency random field, zero mean and unit standard deviation."""
    f = gaussian(rng.standard_normal(shape), sigma=sigma, preserve_range=True)
    f -= f.mean()
    return f / (f.std() + 1e-12)


def _band(v: np.ndarray, centre: np.ndarray, half: float | np.ndarray) -> np.ndarray:
    """Soft profile of a band (1 inside, smooth shoulder of ~1 px at 256 px)."""
    return np.clip((half - np.abs(v - centre)) / 0.006 + 0.5, 0.0, 1.0)


def _draw_chest(rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One radiograph (float, 0..1) and its true masks (bool), drawn from ``rng``."""
    # Pixel centres in image coordinates 0..1, then a random similarity transform into the
    # canonical frame in which the patient's midline is u = 0.5.
    yy, xx = np.mgrid[0:size, 0:size]
    y = (yy + 0.5) / size - 0.5
    x = (xx + 0.5) / size - 0.5
    angle = np.deg2rad(rng.normal(0.0, 2.5))
    scale = rng.uniform(0.93, 1.07)
    dx, dy = rng.normal(0.0, 0.015, size=2)
    c, s = np.cos(angle), np.sin(angle)
    u = (c * (x - dx) + s * (y - dy)) / scale + 0.5
    v = (-s * (x - dx) + c * (y - dy)) / scale + 0.5

    # --- lungs -------------------------------------------------------------------------
    top = rng.uniform(0.07, 0.12)
    bot = rng.uniform(0.74, 0.82)
    width = rng.uniform(0.29, 0.35)
    medial = rng.uniform(0.04, 0.055)
    lungs = np.zeros((size, size), bool)
    hulls = np.zeros((size, size), bool)
    lung_parts: list[np.ndarray] = []
    for side in (-1, 1):  # -1: image left (patient's right lung), +1: image right
        d = side * (u - 0.5)
        l_top = top + (0.008 if side > 0 else 0.0) + rng.normal(0.0, 0.006)
        l_bot = bot + (0.02 if side > 0 else -0.01) + rng.normal(0.0, 0.008)
        l_width = width * (0.95 if side > 0 else 1.0) * rng.uniform(0.96, 1.04)
        wob = _wobble(rng, 0.03)
        t = np.clip((v - l_top) / (l_bot - l_top), 0.0, 1.0)
        med = medial + 0.03 * t**2
        lat = medial + l_width * t**0.4 * (1.0 - 0.08 * t**6) * (1.0 + wob(t))
        frac = np.clip((d - med) / np.maximum(lat - med, 1e-6), 0.0, 1.0)
        dome = rng.uniform(0.05, 0.09)
        v_base = l_bot - dome * (1.0 - frac**2)
        hull = (d >= med - 0.01) & (d <= lat + 0.01) & (v >= l_top - 0.02)
        part = (d >= med) & (d <= lat) & (v >= l_top) & (v <= v_base)
        hulls |= hull
        lung_parts.append(part)
        lungs |= part

    # --- heart: an ellipse, long axis falling to the image's right, flat on the diaphragm
    hx = 0.5 + rng.uniform(0.06, 0.1)
    hy = bot - rng.uniform(0.14, 0.18)
    ax = rng.uniform(0.16, 0.2)
    ay = rng.uniform(0.12, 0.145)
    ha = np.deg2rad(rng.uniform(15.0, 32.0))
    hu, hv = u - hx, v - hy
    p = np.cos(ha) * hu + np.sin(ha) * hv
    q = -np.sin(ha) * hu + np.cos(ha) * hv
    heart = (p / ax) ** 2 + (q / ay) ** 2 <= 1.0
    heart &= v <= hy + ay * rng.uniform(0.75, 0.9)
    lungs &= ~heart
    lung_parts = [part & ~heart for part in lung_parts]

    # --- clavicles: bony bands, about 10 px thick at 256 px, crossing the lung apices and
    # rising laterally; as in the SCR annotations the mask is the part of the bone that
    # lies over the lung field (plus a narrow margin), about 1-2 % of the image as in JSRT
    clavicles = np.zeros((size, size), bool)
    clav_img = np.zeros((size, size))
    c_level = top + rng.uniform(0.1, 0.12)
    for side in (-1, 1):
        d = side * (u - 0.5)
        start = rng.uniform(0.015, 0.03)
        length = rng.uniform(0.30, 0.36)
        rise = rng.uniform(0.05, 0.07)
        pp = np.clip((d - start) / length, 0.0, 1.0)
        centre = (c_level + rng.normal(0.0, 0.006) - rise * pp**1.5
                  + 0.008 * np.sin(2 * np.pi * pp + rng.uniform(-0.3, 0.3)))
        half = rng.uniform(0.019, 0.024) * (1.0 + 0.35 * (1.0 - pp) ** 3)
        along = np.clip((d - start) / 0.006 + 0.5, 0.0, 1.0) * (d <= start + length)
        prof = _band(v, centre, half) * along
        cortex = np.exp(-(((np.abs(v - centre) - half * 0.8) / (half * 0.25)) ** 2)) * along
        clav_img = np.maximum(clav_img, 0.75 * prof + 0.35 * cortex * (prof > 0))
        clavicles |= (prof >= 0.5) & hulls

    masks = {"lungs": lungs, "heart": heart, "clavicles": clavicles}

    # --- intensities (bright = dense) ---------------------------------------------------
    ax_u = np.abs(u - 0.5)
    neck = 0.09 + 0.35 * np.clip((v - 0.02) / 0.1, 0.0, 1.0) ** 0.6
    body_half = np.minimum(neck, rng.uniform(0.42, 0.46) + 0.05 * np.clip(v - 0.1, 0.0, 1.0))
    body = gaussian(((ax_u <= body_half) & (v > -0.1)).astype(float), sigma=size / 80)
    tissue = rng.uniform(0.68, 0.8)
    img = 0.12 + (tissue - 0.12) * body
    img += 0.08 * body * (1.0 - (ax_u / 0.5) ** 2)  # thicker in the middle
    img += rng.uniform(0.04, 0.1) * np.clip((v - bot + 0.05) / 0.2, 0.0, 1.0) * body  # abdomen

    lung_soft = gaussian(lungs.astype(float), sigma=size / 170)
    air = rng.uniform(0.3, 0.4)
    texture = 0.035 * _smooth_field(rng, (size, size), size / 100)
    vessels = np.clip(_smooth_field(rng, (size, size), size / 180), 0.0, None) * 0.04
    hilum = np.exp(-(((ax_u - 0.11) / 0.07) ** 2 + ((v - 0.42) / 0.12) ** 2))
    img -= lung_soft * (air * (1.0 - 0.25 * hilum) - texture - vessels)
    img -= 0.05 * lung_soft * np.clip(1.0 - (v - top) / 0.5, 0.0, 1.0)  # apices darker

    # heart and mediastinum
    img += 0.05 * gaussian(heart.astype(float), sigma=size / 120)
    med_half = 0.045 + 0.03 * np.clip(v - 0.15, 0.0, None)
    img += 0.05 * gaussian((ax_u <= med_half).astype(float), sigma=size / 100) * body
    trachea = (ax_u <= 0.016) & (v >= 0.0) & (v <= 0.33)
    img -= 0.1 * gaussian(trachea.astype(float), sigma=size / 160)

    # spine with vertebrae
    vert = 0.5 + 0.5 * np.cos(2 * np.pi * (v - rng.uniform(0, 1)) / rng.uniform(0.055, 0.07))
    spine = gaussian(_band(u, 0.5, 0.032), sigma=size / 120)
    img += 0.06 * spine * (0.6 + 0.4 * vert) * body * np.clip(v / 0.12, 0.0, 1.0)

    # posterior ribs over each lung: arcs from the spine out and down
    rib_img = np.zeros((size, size))
    spacing = rng.uniform(0.075, 0.09)
    for side in (-1, 1):
        d = side * (u - 0.5)
        dd = np.clip(d / 0.45, 0.0, 1.2)
        bend = rng.uniform(0.14, 0.2)
        for k in range(10):
            v0 = top - 0.03 + k * spacing
            centre = v0 - 0.03 * np.sin(np.pi * dd) + bend * dd**2
            rib_img = np.maximum(rib_img, _band(v, centre, 0.013) * (d > 0.03))
    thorax = np.clip((bot + 0.03 - v) / 0.06, 0.0, 1.0)
    img += rng.uniform(0.05, 0.09) * gaussian(rib_img, sigma=size / 150) * body * thorax
    img += rng.uniform(0.18, 0.24) * gaussian(clav_img, sigma=size / 250)

    # smooth gradients, contrast, blur, noise
    img += 0.04 * _smooth_field(rng, (size, size), size / 6)
    img += rng.normal(0.0, 0.03) * (xx / size - 0.5)
    img = gaussian(img, sigma=rng.uniform(0.6, 1.1) * size / 256)
    img = np.clip(img, 0.0, 1.0) ** rng.uniform(0.8, 1.25)
    lo, hi = rng.uniform(0.0, 0.08), rng.uniform(0.9, 1.0)
    img = lo + (hi - lo) * img
    peak = rng.uniform(300.0, 1200.0)  # photon count at full brightness: Poisson-like
    img = img + np.sqrt(np.clip(img, 0.0, None) / peak) * rng.standard_normal(img.shape)
    img = img + rng.uniform(0.005, 0.015) * rng.standard_normal(img.shape)
    return np.clip(img, 0.0, 1.0), masks


# --------------------------------------------------------------------------- corruption


def _boundary_point(rng: np.random.Generator, mask: np.ndarray) -> tuple[int, int]:
    edge = mask & ~erosion(mask, disk(1))
    ys, xs = np.nonzero(edge if edge.any() else mask)
    i = int(rng.integers(len(ys)))
    return int(ys[i]), int(xs[i])


def _corrupt(rng: np.random.Generator, mask: np.ndarray, op: str,
             cls: str) -> tuple[np.ndarray, int | str]:
    """The spoilt mask and its radius in px as drawn ("" where the operation has none)."""
    size = mask.shape[0]
    px = size / 256.0
    if not mask.any():
        return mask.copy(), 0
    if op == "erode":
        r = int(rng.integers(2, 4) if cls == "clavicles" else rng.integers(4, 9))
        r = max(1, round(r * px))
        out = erosion(mask, disk(r))
        return (out, r) if out.any() else (erosion(mask, disk(1)), 1)
    if op == "dilate":
        r = int(rng.integers(4, 8) if cls == "clavicles" else rng.integers(5, 11))
        r = max(1, round(r * px))
        return dilation(mask, disk(r)), r
    return _corrupt_shape(rng, mask, op)


def _corrupt_shape(rng: np.random.Generator, mask: np.ndarray,
                   op: str) -> tuple[np.ndarray, int | str]:
    size = mask.shape[0]
    px = size / 256.0
    if op == "shift":
        dist = rng.uniform(6.0, 12.0) * px
        a = rng.uniform(0.0, 2 * np.pi)
        dy, dx = int(round(dist * np.sin(a))), int(round(dist * np.cos(a)))
        out = np.zeros_like(mask)
        src = mask[max(0, -dy):size - max(0, dy), max(0, -dx):size - max(0, dx)]
        out[max(0, dy):max(0, dy) + src.shape[0], max(0, dx):max(0, dx) + src.shape[1]] = src
        return out, int(round(dist))
    if op == "cut":
        # cut one structure of the class with a straight line, dropping 20-45 % of it
        parts = label(mask)
        k = int(rng.integers(1, parts.max() + 1))
        part = parts == k
        ys, xs = np.nonzero(part)
        a = rng.uniform(0.0, 2 * np.pi)
        proj = ys * np.sin(a) + xs * np.cos(a)
        thresh = np.quantile(proj, 1.0 - rng.uniform(0.2, 0.45))
        out = mask.copy()
        drop = proj > thresh
        out[ys[drop], xs[drop]] = False
        return out, ""
    if op == "blob":
        cy, cx = _boundary_point(rng, mask)
        yy, xx = np.mgrid[0:size, 0:size]
        ry, rx = rng.uniform(8.0, 14.0, size=2) * px
        ys, xs = np.nonzero(mask)
        # push the blob's centre outwards, away from the structure's centroid
        vy, vx = cy - ys.mean(), cx - xs.mean()
        norm = np.hypot(vy, vx) + 1e-9
        cy, cx = cy + vy / norm * ry * 0.9, cx + vx / norm * rx * 0.9
        blob = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        return mask | blob, int(round((ry + rx) / 2))
    if op == "missing":
        parts = label(mask)
        if parts.max() <= 1:
            return np.zeros_like(mask), ""
        sizes = np.bincount(parts.ravel())[1:]
        big = np.argsort(sizes)[::-1][:2] + 1  # one of the two main structures
        return mask & (parts != big[int(rng.integers(len(big)))]), ""
    raise ValueError(f"unknown corruption {op!r}")


# --------------------------------------------------------------------------- writing


def _save_png(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        skio.imsave(tmp, arr, check_contrast=False)


def make_sample_dataset(
    out: Path,
    *,
    n: int = 36,
    size: int = 256,
    seed: int = 0,
    bad_fraction: float = 0.33,
) -> list[Row]:
    """Write ``n`` synthetic chest radiographs with masks under ``out``; see the module doc.

    Returns the rows of ``out/corruption.csv``: ``(name, class, operation, pixels)``.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    if size < 32:
        raise ValueError("size must be at least 32")
    if not 0.0 <= bad_fraction <= 1.0:
        raise ValueError("bad_fraction must lie in [0, 1]")
    out = Path(out)
    master = np.random.default_rng(seed)
    n_bad = int(round(bad_fraction * n))
    bad = set(master.choice(n, size=n_bad, replace=False).tolist())
    width = max(3, len(str(n - 1)))

    rows: list[Row] = []
    for i in range(n):
        name = f"chest_{i:0{width}d}"
        rng = np.random.default_rng([seed, i])
        img, masks = _draw_chest(rng, size)
        ops = {cls: "none" for cls in CLASSES}
        if i in bad:
            crng = np.random.default_rng([seed, i, 1])
            k = int(crng.choice([1, 1, 1, 2, 2, 3]))
            for cls in crng.choice(len(CLASSES), size=k, replace=False):
                ops[CLASSES[int(cls)]] = str(crng.choice(OPERATIONS, p=_OP_WEIGHTS))
            for cls in CLASSES:
                if ops[cls] == "none":
                    continue
                bad_mask, radius = _corrupt(crng, masks[cls], ops[cls], cls)
                rows.append((name, cls, ops[cls], radius))
                masks[cls] = bad_mask
        for cls in CLASSES:
            if ops[cls] == "none":
                rows.append((name, cls, "none", 0))
        _save_png(out / "images" / f"{name}.png", np.round(img * 255).astype(np.uint8))
        for cls in CLASSES:
            _save_png(out / "masks" / cls / f"{name}.png", masks[cls].astype(np.uint8) * 255)

    rows.sort(key=lambda r: (r[0], CLASSES.index(r[1])))
    write_text(out / "classes.txt", "\n".join(CLASSES) + "\n")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["name", "class", "operation", "pixels"])
    writer.writerows(rows)
    write_text(out / "corruption.csv", buf.getvalue())
    return rows
