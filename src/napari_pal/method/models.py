"""The two networks of Pick-and-Learn: a U-Net segmenter and the quality awareness module."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _conv_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net (Ronneberger et al. 2015) with batch norm; one logit map per class.

    Classes may overlap (clavicles lie over the lungs), so each class is its own
    sigmoid, not one softmax over classes.
    """

    def __init__(self, in_channels: int = 1, classes: int = 3, width: int = 16, depth: int = 4):
        super().__init__()
        widths = [width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([_conv_block(in_channels, widths[0])])
        self.down.extend(_conv_block(widths[i], widths[i + 1]) for i in range(depth))
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
            for i in reversed(range(depth))
        )
        self.merge = nn.ModuleList(
            _conv_block(2 * widths[i], widths[i]) for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], classes, 1)
        self.depth = depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([skips.pop(), up(x)], dim=1))
        return self.head(x)


class QualityNet(nn.Module):
    """Quality awareness module: a VGG-style CNN on image + masks, one score per sample.

    As in the paper, the last layer is a one-channel convolution followed by global
    average pooling. Unlike a plain VGG stack it uses batch norm and a zero-initialised
    last layer: the score starts at exactly 0 (equal weights, tanh unsaturated), which
    the field notes found necessary for any gradient to reach it.
    """

    def __init__(self, in_channels: int, width: int = 16, blocks: int = 4):
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for i in range(blocks):
            cout = width * 2**i
            layers.append(_conv_block(cin, cout, stride=2))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.score = nn.Conv2d(cin, 1, 1)
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.score(self.features(x)).mean(dim=(1, 2, 3))
