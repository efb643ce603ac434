"""The method's pieces: networks, per-sample loss, QAM/OCM weights, geometry."""

import math

import numpy as np
import pytest
import torch

from napari_pal.data.geometry import Frame
from napari_pal.errors import PalError
from napari_pal.method.config import TrainConfig
from napari_pal.method.models import QualityNet, UNet
from napari_pal.method.weighting import loss_terms, per_sample_loss, sample_weights, weighted_loss


def test_unet_shapes_and_quality_net_starts_neutral():
    net = UNet(1, 3, width=4, depth=3)
    assert net(torch.randn(2, 1, 32, 32)).shape == (2, 3, 32, 32)
    qam = QualityNet(7, width=4)
    t = qam(torch.randn(5, 7, 32, 32))
    assert t.shape == (5,)
    assert torch.equal(t, torch.zeros(5)), "zero-initialised last layer: equal weights at start"


def test_per_sample_loss_is_lower_for_the_matching_mask():
    mask = torch.zeros(2, 1, 16, 16)
    mask[:, :, 4:12, 4:12] = 1
    logits = (mask * 2 - 1) * 6  # confident prediction of the square
    wrong = torch.roll(mask, 3, dims=3)
    losses = per_sample_loss(logits, torch.cat([mask[:1], wrong[1:]]))
    assert losses.shape == (2,)
    assert losses[0] < losses[1]


def test_bce_ranking_rewards_the_right_mask_when_dice_rewards_the_dilated_one():
    """Why the QAM can rank the BCE loss: a segmenter trained on clean and over-drawn masks
    predicts an outline half-way between them; against it, soft Dice (and BCE + Dice) is
    lower for the over-drawn mask, cross-entropy alone for the right one."""
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    r = ((yy - 32) ** 2 + (xx - 32) ** 2).sqrt()
    truth, dilated = (r < 12).float(), (r < 19).float()
    logits = (2 * (15.5 - r)).clamp(-8, 8)[None, None]  # outline half-way, radius 15.5
    masks = torch.stack([truth, dilated])[:, None]
    bce, dice = loss_terms(logits.expand(2, 1, 64, 64), masks)
    assert bce[0] < bce[1]
    assert dice[1] < dice[0]
    assert bce[1] + dice[1] < bce[0] + dice[0]


def test_bce_ranking_keeps_the_loss_and_moves_only_the_qam_gradient():
    bce = torch.tensor([0.1, 0.5, 0.2], requires_grad=True)
    dice = torch.tensor([0.6, 0.1, 0.3], requires_grad=True)
    grads = {}
    for mode in ("bce+dice", "bce"):
        t = torch.tensor([0.3, -0.2, 0.1], requires_grad=True)
        loss = weighted_loss(sample_weights(t, "qam_ocm", lam=1.0), bce, dice, mode)
        seg = torch.autograd.grad(loss, (bce, dice), retain_graph=True)
        grads[mode] = (loss.item(), torch.autograd.grad(loss, t)[0], seg)
    (v1, g1, s1), (v2, g2, s2) = grads["bce+dice"], grads["bce"]
    assert v1 == pytest.approx(v2)
    assert all(torch.allclose(a, b) for a, b in zip(s1, s2))  # segmenter: unchanged
    t = torch.tensor([0.3, -0.2, 0.1], requires_grad=True)
    want = torch.autograd.grad((sample_weights(t, "qam_ocm", lam=1.0) * bce.detach()).sum(), t)[0]
    assert torch.allclose(g2, want) and not torch.allclose(g1, g2)


def test_weights_sum_to_one_and_ocm_bounds_their_ratio():
    t = torch.tensor([-50.0, 0.0, 3.0, 50.0])
    for strategy in ("qam", "qam_ocm", "baseline"):
        w = sample_weights(t, strategy, lam=2.0)
        assert torch.isclose(w.sum(), torch.tensor(1.0))
    w = sample_weights(t, "qam_ocm", lam=2.0)
    assert (w.max() / w.min()).item() <= math.exp(4.0) * 1.0001
    assert (w.max() / w.min()).item() > 50  # the bound is nearly reached at saturation
    raw = sample_weights(t, "qam", lam=2.0)
    assert raw.min().item() < 1e-30, "without OCM a sample can be ignored entirely"
    assert torch.allclose(sample_weights(t, "baseline", 2.0), torch.full((4,), 0.25))


def test_trusted_samples_are_never_down_weighted():
    t = torch.tensor([-3.0, 0.5, 2.0, 1.0])
    trusted = torch.tensor([True, False, False, False])
    w = sample_weights(t, "qam_ocm", 2.0, trusted)
    assert w[0] >= w.max() - 1e-7


def test_trusted_masks_anchor_the_quality_module():
    from napari_pal.method.weighting import ANCHOR_STRENGTH, anchor_margin

    t = torch.tensor([-1.0, 0.5, 2.0, 1.0], requires_grad=True)
    trusted = torch.tensor([True, False, False, False])
    losses = torch.tensor([0.5, 0.1, 0.1, 0.1])  # the reviewed mask disagrees with the rest
    w = sample_weights(t, "qam_ocm", 1.0, trusted)
    assert torch.allclose(w, sample_weights(t.detach(), "qam_ocm", 1.0, trusted))  # same value
    (w * losses).sum().backward()
    assert t.grad[0] < 0, "descent raises the reviewed mask's score"
    assert (t.grad[1:] > 0).all(), "and lowers the others' below it"
    # the added gradient is exactly that of the margin loss
    s = t.detach().clone().requires_grad_(True)
    anchor_margin(s, trusted).backward()
    u = t.detach().clone().requires_grad_(True)
    (sample_weights(u, "qam_ocm", 1.0, trusted, anchor_strength=0.0) * losses).sum().backward()
    assert torch.allclose(t.grad, u.grad + ANCHOR_STRENGTH * s.grad)
    assert u.grad[0] == 0, "without the anchor the reviewed mask teaches the module nothing"
    # once the reviewed mask scores a margin above all the others, the anchor is silent
    assert anchor_margin(torch.tensor([3.0, 1.0, 0.5]), torch.tensor([True, False, False])) == 0


def test_gradient_moves_weight_to_low_loss_samples():
    t = torch.zeros(4, requires_grad=True)
    losses = torch.tensor([0.1, 0.2, 1.0, 2.0])
    (sample_weights(t, "qam_ocm", 2.0) * losses).sum().backward()
    assert t.grad[0] < 0 < t.grad[3], "descent raises the score of the low-loss sample"


def test_config_rejects_bad_values():
    with pytest.raises(PalError, match="strategy"):
        TrainConfig(strategy="magic")
    with pytest.raises(PalError, match="multiple of"):
        TrainConfig(size=100, depth=4)
    assert TrainConfig(epochs=10).warmup == 2
    assert TrainConfig(strategy="baseline", epochs=10).warmup == 10


@pytest.mark.parametrize("shape", [(300, 200), (120, 160), (64, 64)])
def test_frame_round_trip_keeps_aspect_and_size(shape):
    frame = Frame(*shape, size=64)
    mask = np.zeros((2, *shape), bool)
    mask[:, shape[0] // 4: 3 * shape[0] // 4, shape[1] // 4: 3 * shape[1] // 4] = True
    grid = frame.to_square(mask, binary=True)
    assert grid.shape == (2, 64, 64)
    back = frame.from_square(grid.astype(np.float32), binary=True)
    assert back.shape == mask.shape
    assert (back == mask).mean() > 0.97


def test_washed_out_and_normal_films_look_alike_to_the_network():
    from napari_pal.data.grid import normalise

    rng = np.random.default_rng(0)
    film = rng.random((64, 64)).astype(np.float32)
    washed = 0.93 + 0.07 * film  # grey levels 239-255, as in seven JSRT images
    assert np.allclose(normalise(film), normalise(washed), atol=1e-4)
    assert normalise(np.full((8, 8), 0.5, np.float32)).max() == 0.0
