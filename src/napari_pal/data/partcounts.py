"""The folder's usual number of parts per class: what a mask with a part left out lacks.

A model trained on the folder can learn an omission: in one folder it learnt the clavicle
left out of one mask in thirty and predicted it missing too (p = 0.10 there), so no
distance between that mask and the prediction could see it. The folder's other masks
can: in JSRT every clean lung and clavicle mask has two parts and every heart one
(247 of 247), and in the ten error-kind and noise folders measured no clean mask had
another count, while the masks that did were all spoilt (a part left out, two lungs
dilated into one, a clavicle eroded away or split by a ragged outline, a blob the size of
a part). Training records the counts (``usual_part_counts`` on the grid masks, in the
checkpoint), scoring compares each mask with them.

Parts are :func:`napari_pal.data.errorkinds.parts`: components of at least a tenth of the
mask's area, so specks and small blobs do not count. Empty masks are neither counted nor
judged here: a class left out (or absent) is the outline distances' business.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from napari_pal.data.errorkinds import parts

#: a count is the class's usual one where at least this share of its non-empty masks has
#: it (the lowest share measured: 82 %, JSRT clavicles with 50 % of the masks eroded or
#: dilated by 5-13 px; a class whose count varies by nature has no usual count)
USUAL_SHARE = 0.75


def part_count(mask: np.ndarray) -> int:
    """How many parts a bool (H, W) mask has (0 for an empty one)."""
    return len(parts(np.asarray(mask, bool)))


def usual_part_counts(masks: Iterable[np.ndarray], classes: Sequence[str]
                      ) -> dict[str, int]:
    """Per class, the part count that at least USUAL_SHARE of the non-empty masks share;
    ``masks`` yields one (C, H, W) array per image. A class with no such count is left
    out (nothing is judged by its count)."""
    tally = [Counter() for _ in classes]
    for image_masks in masks:
        for c, mask in enumerate(np.asarray(image_masks, bool)):
            if mask.any():
                tally[c][part_count(mask)] += 1
    usual = {}
    for cls, counts in zip(classes, tally):
        if counts:
            count, n = counts.most_common(1)[0]
            if n >= USUAL_SHARE * sum(counts.values()):
                usual[cls] = int(count)
    return usual


def judged_by(mask: np.ndarray, cls: str, usual: Mapping[str, int] | None) -> int | None:
    """The usual count a mask of ``cls`` is judged by: None for an empty mask or a class
    with no usual count (nothing is judged by parts then)."""
    if not usual or cls not in usual or not np.any(mask):
        return None
    return usual[cls]


__all__ = ["USUAL_SHARE", "judged_by", "part_count", "usual_part_counts"]
