"""The method: U-Net, quality module, weighting, the training loop, checkpoints, inference."""
