"""Batch norm over the global batch when it is split across ranks.

With the batch split, a plain BatchNorm2d would normalise each rank's few images by their
own statistics: a different network from the single-process one, and with 2-4 images per
rank a noisy one. On GPUs torch's ``SyncBatchNorm`` does this; it refuses CPU tensors, so
CPU (gloo) ranks use :class:`GlobalBatchNorm2d`, which sums per-channel statistics with a
gradient-carrying all-reduce. Both keep BatchNorm2d's state-dict keys, so a checkpoint
loads into the plain single-device networks unchanged.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from napari_pal.method.collectives import all_reduce_with_grad


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the whole global batch.

    Per-channel sums and sums of squares are summed over the ranks in one all-reduce per
    layer (combined in float64); its backward sums the gradients, so every rank's share of
    the loss reaches every rank's activations.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not dist.is_initialized() or dist.get_world_size() < 2:
            return super().forward(x)
        c = x.shape[1]
        xf = x.float()
        count = torch.full((1,), x.numel() // c, dtype=torch.float64, device=x.device)
        # float32 sums (cascade-summed by torch, 3x faster than float64 ones on CPU),
        # combined in float64
        local = torch.cat([xf.sum(dim=(0, 2, 3)).double(),
                           (xf * xf).sum(dim=(0, 2, 3)).double(), count])
        total = all_reduce_with_grad(local)
        n = total[-1]
        mean = total[:c] / n
        var = (total[c:2 * c] / n - mean * mean).clamp_min(0)
        scale = torch.rsqrt(var + self.eps)
        if self.affine:
            scale = scale * self.weight
            shift = self.bias - mean * scale
        else:
            shift = -mean * scale
        y = torch.addcmul(shift.float().view(1, c, 1, 1), xf, scale.float().view(1, c, 1, 1))
        if self.track_running_stats:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.mul_(1 - m).add_(mean.to(self.running_mean.dtype), alpha=m)
                unbiased = var * n / (n - 1).clamp_min(1)
                self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)
                self.num_batches_tracked.add_(1)
        return y.to(x.dtype)


def sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Make every BatchNorm2d of ``module`` normalise over the global batch (in place).

    Parameters and buffers are kept (the optimizer keeps pointing at the same tensors).
    """
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            module._modules[name] = _global_copy(child)
        else:
            sync_batchnorm(child, device)
    return module


def _global_copy(bn: nn.BatchNorm2d) -> GlobalBatchNorm2d:
    out = GlobalBatchNorm2d(bn.num_features, bn.eps, bn.momentum, bn.affine,
                            bn.track_running_stats, device=bn.running_mean.device
                            if bn.running_mean is not None else None)
    if bn.affine:
        out.weight, out.bias = bn.weight, bn.bias
    if bn.track_running_stats:
        out.running_mean, out.running_var = bn.running_mean, bn.running_var
        out.num_batches_tracked = bn.num_batches_tracked
    out.train(bn.training)
    return out
