"""Whether a model's scores for a class mean anything: the guard against ranking noise.

A model that has not learnt a class (too few epochs, too small a size) still gives every
mask a number; ranked, those numbers look like a finding. ``assess`` says per class, from
the scores of one scoring pass, whether the ranking of that class can be trusted:

- the class must be predicted: in at least ``MIN_PREDICTED`` (10 %) of the images whose mask
  has the class, the thresholded prediction (p > 0.5) is not empty;
- the model must agree with the masks: the median Dice of prediction and mask over the
  images is at least ``MIN_MEDIAN_DICE`` (0.5). Even with half of the masks spoilt by
  5-13 px, a model that learnt the class agrees with most masks far above that; below it,
  the distance to the predicted outline measures the model's error, not the mask's.

The CLI (``score``) and the widget call this one function, so both warn alike.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace

from napari_pal.scoring.quality import ImageScore, image_quality

MIN_PREDICTED = 0.10
MIN_MEDIAN_DICE = 0.5


@dataclass(frozen=True)
class ClassReliability:
    """The verdict for one class, with the two numbers it rests on."""

    cls: str
    reliable: bool
    predicted_fraction: float  # images with the class in the mask where it is predicted
    median_dice: float
    reason: str  # empty when reliable


def assess(scores: Sequence[ImageScore], classes: Sequence[str]) -> dict[str, ClassReliability]:
    """Per class: can its scores be read as a ranking? (rule in the module docstring)"""
    out: dict[str, ClassReliability] = {}
    for cls in classes:
        offsets = [s.signals.get(f"offset_{cls}", math.nan) for s in scores]
        dice = [s.signals.get(f"dice_{cls}", math.nan) for s in scores]
        # offset +inf: the mask has the class, the prediction is empty; -inf: the reverse
        with_mask = [o for o in offsets if o != -math.inf]
        predicted = sum(o != math.inf for o in with_mask)
        frac = predicted / len(with_mask) if with_mask else math.nan
        finite = [d for d in dice if math.isfinite(d)]
        median = statistics.median(finite) if finite else math.nan
        reasons = []
        if with_mask and frac < MIN_PREDICTED:
            reasons.append(f"the model (almost) never predicts it: in {predicted} of "
                           f"{len(with_mask)} image{'s' if len(with_mask) != 1 else ''}")
        if finite and median < MIN_MEDIAN_DICE:
            reasons.append(f"the model agrees with the masks only at median Dice {median:.2f} "
                           f"(< {MIN_MEDIAN_DICE})")
        out[cls] = ClassReliability(cls, not reasons, frac, median, "; ".join(reasons))
    return out


def warnings_text(verdicts: dict[str, ClassReliability]) -> list[str]:
    """One line per unreliable class, for the CLI and the widget's notification."""
    return [f"class '{v.cls}' is not reliable: {v.reason}; its quality is not a ranking "
            "(train longer or at a larger --size)" for v in verdicts.values() if not v.reliable]


def rank_by_reliable(scores: Sequence[ImageScore],
                     verdicts: dict[str, ClassReliability]) -> list[ImageScore]:
    """Scores whose overall quality is taken over the reliable classes only (the worst of
    them, as ``quality.image_quality``), so an unlearnt class does not drown the others;
    unchanged when every class (or none) is reliable."""
    keep = [c for c, v in verdicts.items() if v.reliable]
    if not keep or len(keep) == len(verdicts):
        return list(scores)
    return [replace(s, quality=image_quality({c: s.per_class[c] for c in keep}))
            for s in scores]


__all__ = ["MIN_MEDIAN_DICE", "MIN_PREDICTED", "ClassReliability", "assess",
           "rank_by_reliable", "warnings_text"]
