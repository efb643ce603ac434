"""Collectives that carry gradients, for losses and statistics over the global batch.

torch's ``torch.distributed.nn.functional`` does this but is deprecated since torch 2.11
(it warns on every import site, pointing at the private ``_functional_collectives``), so
the two we need are written here as nnU-Net's ``AllGatherGrad`` and open_clip's
``gather_with_grad`` use them: forward is the plain collective; backward sums every rank's
gradient, because every rank's share of the loss may depend on every gathered value.
Both work on gloo (CPU) and NCCL (GPU).
"""

from __future__ import annotations

import torch
import torch.distributed as dist


class _AllGather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.rank, ctx.rows = dist.get_rank(), x.shape[0]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)  # d(Σ of all ranks' shares)/d(each gathered value)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


class _AllReduce(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Every rank's ``x`` (same shape on all), concatenated in rank order along dim 0."""
    return _AllGather.apply(x)


def all_reduce_with_grad(x: torch.Tensor) -> torch.Tensor:
    """The sum of ``x`` over the ranks."""
    return _AllReduce.apply(x)
