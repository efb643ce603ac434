"""Data: dataset folders, image files, grid geometry, training tensors, noise."""
