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


def sample_weights(
    scores: torch.Tensor,
    strategy: str,
    lam: float,
    trusted: torch.Tensor | None = None,
) -> torch.Tensor:
    """Weights that sum to one over the mini-batch (Eq. 1 of the paper).

    ``qam``: softmax of the raw scores t; ``qam_ocm``: softmax of λ·tanh(t), so two
    weights differ at most by e^(2λ). Trusted samples (masks an annotator reviewed)
    get the largest bounded score λ, so they are never down-weighted.
    """
    n = scores.shape[0]
    if strategy == "baseline":
        return torch.full((n,), 1.0 / n, device=scores.device)
    phi = lam * torch.tanh(scores) if strategy == "qam_ocm" else scores
    if trusted is not None and trusted.any():
        ceiling = torch.maximum(phi.detach().max(), torch.tensor(lam, device=phi.device))
        phi = torch.where(trusted, ceiling, phi)
    return torch.softmax(phi.float(), dim=0)
