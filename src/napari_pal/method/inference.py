"""A trained run, loaded for prediction and quality scoring."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from napari_pal.data.geometry import Frame
from napari_pal.data.grid import grid_image
from napari_pal.method import device as dev
from napari_pal.method.checkpoint import load_checkpoint
from napari_pal.method.config import TrainConfig
from napari_pal.method.models import QualityNet, UNet
from napari_pal.method.training import build_networks, quality_input


@dataclass
class TrainedModel:
    config: TrainConfig
    classes: list[str]
    segmenter: UNet
    qam: QualityNet
    device: torch.device
    amp: torch.dtype | None
    epoch: int
    #: the training folder's usual part count per class (``data.partcounts``; empty for
    #: checkpoints written before it was recorded: no part rule then)
    usual_parts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, run: str | Path, device: str = "auto") -> TrainedModel:
        """Load the checkpoint of a run folder (or a checkpoint file) safely."""
        state = load_checkpoint(run)
        config = TrainConfig.from_dict(state["config"])
        classes = list(state["classes"])
        segmenter, qam = build_networks(config, len(classes))
        segmenter.load_state_dict(state["segmenter"])
        qam.load_state_dict(state["qam"])
        where = dev.pick_device(device if device != "auto" else config.device)
        for net in (segmenter, qam):
            net.to(where, memory_format=torch.channels_last).eval()
        return cls(config, classes, segmenter, qam, where,
                   dev.autocast_dtype(where, config.precision), int(state.get("epoch", 0)),
                   {str(k): int(v) for k, v in state.get("usual_parts", {}).items()})

    @classmethod
    def snapshot(cls, trainer) -> TrainedModel:
        """The networks of a running :class:`~napari_pal.method.training.Trainer`, copied in
        eval mode, so the folder can be scored mid-training while training goes on."""
        segmenter, qam = copy.deepcopy(trainer.segmenter), copy.deepcopy(trainer.qam)
        for net in (segmenter, qam):
            net.eval()
        return cls(trainer.config, list(trainer.data.classes), segmenter, qam, trainer.device,
                   trainer.amp, int(trainer.epoch), trainer.usual_parts)

    @torch.no_grad()
    def predict_grid(self, images: torch.Tensor, masks: torch.Tensor | None = None
                     ) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities (N, C, S, S) for grid images and, given masks, the QAM's raw scores t."""
        x = images.to(self.device).contiguous(memory_format=torch.channels_last)
        with dev.autocast(self.device, self.amp):
            logits = self.segmenter(x)
            scores = None
            if masks is not None and self.config.strategy != "baseline":
                q_in = quality_input(x, masks.to(self.device).float(), logits, self.config)
                scores = self.qam(q_in).float().cpu().numpy()
        return torch.sigmoid(logits.float()).cpu().numpy(), scores

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Class probabilities (C, H, W) at the image's own size."""
        frame = Frame(image.shape[0], image.shape[1], self.config.size)
        grid = torch.from_numpy(grid_image(image, frame))[None, None]
        probs, _ = self.predict_grid(grid)
        return frame.from_square(probs[0])
