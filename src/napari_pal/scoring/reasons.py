"""Why a class got its quality, in words an annotator can act on.

A quality of 0.04 says "look here", not what to look for; the term that set it does: a
part missing, a stray blob, a brush stroke past the outline, an outline drawn too wide.
The reason names that term with its size in pixels of the image as stored, so the
annotator knows what to look for before the disagreement map shows where.
"""

from __future__ import annotations

from collections.abc import Mapping

#: the worst part's and the predicted outline's distances count as the whole outline's
#: while under this times the mask outline's (an erosion or a dilation moves every part
#: and both outlines alike; a part drawn twice moves one, a part left out only the
#: predicted outline)
WHOLE_OUTLINE = 1.5
#: the terms of a class's quality (``scoring.quality``), in pixels of the stored image
TERMS = ("dist", "dist_part", "dist_back", "thick", "stray", "stroke")


def class_reason(terms: Mapping[str, float], *, offset: float, drawn: bool, seen: bool,
                 parts: int, usual_parts: int | None) -> str:
    """The reason for one class's quality: the term that set it (``terms``: each of TERMS
    as it entered the maximum, ``thick`` already halved), ``offset`` the signed outline
    distance, ``drawn``/``seen`` whether the mask/the prediction has any pixel, ``parts``
    the mask's part count and ``usual_parts`` the folder's (None: no usual count)."""
    if drawn and usual_parts is not None and parts != usual_parts:
        return (f"{parts} part{'' if parts == 1 else 's'} where the folder's masks have "
                f"{usual_parts}")
    if not drawn:
        return ("not drawn but the model sees it" if seen
                else "not drawn and not seen by the model")
    if not seen:
        return "drawn where the model sees nothing"
    term = max(TERMS, key=lambda t: terms.get(t, 0.0))
    px = terms.get(term, 0.0)  # finite: every term is, where both mask and model have pixels
    if px == 0:
        return "agrees with the model"
    size = f"{px:.1f} px"
    if term == "dist" or (term in ("dist_part", "dist_back")
                          and px < WHOLE_OUTLINE * terms["dist"]):
        if offset > px / 2:
            return f"outline drawn {size} outside the model's"
        if offset < -px / 2:
            return f"outline drawn {size} inside the model's"
        return f"outline {size} off the model's (in and out)"
    return {
        "dist_part": f"one part's outline {size} from the model's",
        "dist_back": f"the model's outline {size} from the mask's: a part left out?",
        "thick": f"a piece {4 * px:.1f} px thick that the model denies",
        "stray": f"a stray piece {size} from what the model sees",
        "stroke": f"a brush stroke {size} past the outline",
    }[term]


def image_reason(score) -> str:
    """Why an image (a ``scoring.quality.ImageScore``) got its quality: the reason of the
    class that sets it ("lungs: 1 part where the folder's masks have 2"); empty where none
    is recorded. Kept free of torch, so the napari table can import it at start."""
    for cls, q in score.per_class.items():
        if q == score.quality and cls in score.why:
            return f"{cls}: {score.why[cls]}"
    return ""


__all__ = ["TERMS", "WHOLE_OUTLINE", "class_reason", "image_reason"]
