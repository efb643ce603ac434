"""How an image of any size sits in the network's square grid, and back.

Images are letterboxed (padded to a square, centred) rather than stretched, so a
radiograph keeps its aspect ratio and every prediction maps back to the image's own
pixels exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.transform import resize


@dataclass(frozen=True)
class Frame:
    """The letterbox of one ``height`` x ``width`` image in a ``size`` x ``size`` grid."""

    height: int
    width: int
    size: int

    @property
    def side(self) -> int:
        return max(self.height, self.width)

    @property
    def offset(self) -> tuple[int, int]:
        return (self.side - self.height) // 2, (self.side - self.width) // 2

    @property
    def scale(self) -> float:
        """Image pixels per grid pixel."""
        return self.side / self.size

    def to_square(self, arr: np.ndarray, *, binary: bool = False) -> np.ndarray:
        """Map ``(..., H, W)`` image-space data into the ``(..., size, size)`` grid.

        Binary masks are area-averaged and thresholded at one half, as the SCR masks were.
        """
        arr = np.asarray(arr)
        lead = arr.shape[:-2]
        oy, ox = self.offset
        square = np.zeros(lead + (self.side, self.side), dtype=np.float32)
        square[..., oy:oy + self.height, ox:ox + self.width] = arr
        if self.side != self.size:
            square = resize(square, lead + (self.size, self.size), order=1,
                            anti_aliasing=self.side > self.size, preserve_range=True)
        square = square.astype(np.float32)
        return square > 0.5 if binary else square

    def from_square(self, arr: np.ndarray, *, binary: bool = False) -> np.ndarray:
        """Map ``(..., size, size)`` grid data back to ``(..., H, W)`` image space."""
        arr = np.asarray(arr, dtype=np.float32)
        lead = arr.shape[:-2]
        if self.side != self.size:
            arr = resize(arr, lead + (self.side, self.side), order=1,
                         anti_aliasing=False, preserve_range=True).astype(np.float32)
        oy, ox = self.offset
        out = arr[..., oy:oy + self.height, ox:ox + self.width]
        return out > 0.5 if binary else np.ascontiguousarray(out)
