"""What the review says about a ranking: how settled it is, and which classes it may not
rank (GUI-free words for the widget's labels; tested without a display)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def refresh_text(refresh: Any) -> str:
    """'refreshed at epoch 12/60: 2 of the top 17 changed', '... settled', 'final ranking'."""
    if refresh is None:
        return ""
    k = min(refresh.top_k, len(refresh.scores))
    when = (f"final ranking (epoch {refresh.epoch}/{refresh.epochs})" if refresh.final
            else f"refreshed at epoch {refresh.epoch}/{refresh.epochs}")
    if not getattr(refresh, "ranked", True):
        how = ("no class learnt yet, training goes on" if not refresh.final
               else "no class learnt: no ranking")
    elif refresh.top_changed is None:
        how = "first ranking, training goes on" if not refresh.final else f"top {k}"
    else:
        changed = round(refresh.top_changed * k)
        how = f"{changed} of the top {k} changed"
        if refresh.settled:
            how = f"settled ({how})"
    return f"{when}: {how}"


def reliability_text(verdicts: Mapping[str, Any]) -> str:
    """One line per class whose quality is not a ranking; '' when every class is reliable."""
    bad = [v for v in verdicts.values() if not v.reliable]
    if not bad:
        return ""
    lines = [f"⚠ '{v.cls}' is not reliable: {v.reason}" for v in bad]
    if len(bad) == len(verdicts):
        lines.insert(0, "⚠ no class is reliable: the table is not a ranking "
                        "(train longer or at a larger size)")
    else:
        lines.append("its column shows '-'; the overall quality uses the other classes")
    return "\n".join(lines)
