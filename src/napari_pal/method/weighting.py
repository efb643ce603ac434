"""The method of the paper: per-sample losses re-weighted by the quality module (QAM),
bounded by the overfitting control module (OCM, Φ(t) = λ·tanh(t))."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def loss_terms(logits: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample binary cross-entropy and soft-Dice loss (mean over classes).

    Dice keeps small structures (clavicles) from being drowned by the background;
    classes are independent sigmoids because they may overlap.
    """
    logits = logits.float()
    bce = F.binary_cross_entropy_with_logits(logits, masks, reduction="none").mean(dim=(1, 2, 3))
    probs = torch.sigmoid(logits)
    inter = (probs * masks).sum(dim=(2, 3))
    denom = probs.sum(dim=(2, 3)) + masks.sum(dim=(2, 3))
    dice = 1 - (2 * inter + 1) / (denom + 1)
    return bce, dice.mean(dim=1)


def per_sample_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The segmenter's loss, one value per sample: BCE + soft Dice."""
    bce, dice = loss_terms(logits, masks)
    return bce + dice


def weighted_loss(weights: torch.Tensor, bce: torch.Tensor, dice: torch.Tensor,
                  qam_loss: str = "bce+dice") -> torch.Tensor:
    """Σ wᵢ·Lᵢ, the loss both networks minimise (the paper).

    With ``qam_loss="bce"`` the value and the segmenter's gradient are the same, but the
    weights (so the QAM) learn from Σ wᵢ·BCEᵢ: soft Dice is lower for an over-drawn mask
    than for the right one against the same prediction, which made the QAM favour
    over-drawn masks.
    """
    losses = bce + dice
    if qam_loss != "bce" or not weights.requires_grad:
        return (weights * losses).sum()
    fixed = weights.detach()
    return (fixed * losses).sum() + ((weights - fixed) * bce.detach()).sum()


#: default strength of the trusted-mask anchor (``TrainConfig.anchor``; see ``anchor``)
ANCHOR_STRENGTH = 1.0


class _Anchor(torch.autograd.Function):
    """Identity forward; backward adds ``strength`` x the gradient of the margin loss
    mean over pairs (trusted i, unreviewed j) of relu(1 - (t_i - t_j)) to the scores'."""

    @staticmethod
    def forward(ctx, scores, trusted, strength):  # noqa: D102
        ctx.save_for_backward(scores.detach(), trusted)
        ctx.strength = strength
        return scores.clone()

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        scores, trusted = ctx.saved_tensors
        with torch.enable_grad():
            s = scores.float().requires_grad_(True)
            (g,) = torch.autograd.grad(anchor_margin(s, trusted), s)
        return grad + ctx.strength * g.to(grad.dtype), None, None


def anchor_margin(scores: torch.Tensor, trusted: torch.Tensor) -> torch.Tensor:
    """Mean hinge relu(1 - (t_i - t_j)) over trusted i and unreviewed j in the batch (0
    without both): zero once every reviewed mask scores a margin above the others."""
    if not trusted.any() or trusted.all():
        return scores.sum() * 0.0
    gap = scores[trusted][:, None] - scores[~trusted][None, :]
    return F.relu(1.0 - gap).mean()


def anchor(scores: torch.Tensor, trusted: torch.Tensor | None,
           strength: float = ANCHOR_STRENGTH) -> torch.Tensor:
    """The QAM's raw scores, unchanged, whose gradient also pushes reviewed (trusted) masks'
    scores a margin above the unreviewed ones in the batch.

    Why: trusted samples get the ceiling weight, a constant, so without this the quality
    module never learns from them; when most masks are wrong the same way (75 % over-drawn)
    it learns to favour the wrong majority, and reviewing the masks it ranks worst (the
    clean ones) changes nothing: 30 reviewed masks left the ranking inverted (ROC AUC
    0.000); with the anchor 5 turned the module's own ranking (AUC 0.84) and 60 the quality
    score's (0.995); ``python -m napari_pal.bench.annotator``. Equivalent to adding
    ``strength`` x ``anchor_margin`` to the loss, without changing the loss value that is
    logged and checked.
    """
    if trusted is None or strength <= 0 or not trusted.any() or not scores.requires_grad:
        return scores
    return _Anchor.apply(scores, trusted.to(scores.device), float(strength))


def sample_weights(
    scores: torch.Tensor,
    strategy: str,
    lam: float,
    trusted: torch.Tensor | None = None,
    anchor_strength: float = ANCHOR_STRENGTH,
) -> torch.Tensor:
    """Weights that sum to one over the mini-batch (Eq. 1 of the paper).

    ``qam``: softmax of the raw scores t; ``qam_ocm``: softmax of λ·tanh(t), so two
    weights differ at most by e^(2λ). Trusted samples (masks an annotator reviewed)
    get the largest bounded score λ, so they are never down-weighted, and anchor the
    quality module: its scores learn to put them above the unreviewed ones (``anchor``).
    """
    n = scores.shape[0]
    if strategy == "baseline":
        return torch.full((n,), 1.0 / n, device=scores.device)
    scores = anchor(scores, trusted, anchor_strength)
    phi = lam * torch.tanh(scores) if strategy == "qam_ocm" else scores
    if trusted is not None and trusted.any():
        ceiling = torch.maximum(phi.detach().max(), torch.tensor(lam, device=phi.device))
        phi = torch.where(trusted, ceiling, phi)
    return torch.softmax(phi.float(), dim=0)
