"""How a dataset folder is laid out: the three ways it stores masks, and one Item per image
(read by matching.py and dataset.py, written by writing.py)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path


class Layout(str, enum.Enum):
    CLASS_FOLDERS = "class_folders"
    LABEL_IMAGE = "label_image"
    MULTICHANNEL = "multichannel_tiff"


@dataclass(frozen=True)
class Item:
    name: str
    image_path: Path
    mask_paths: tuple[Path, ...]  # one per class for CLASS_FOLDERS, else one file; () = none

    @property
    def annotated(self) -> bool:
        """The image has its masks (an unannotated image is predicted, never scored)."""
        return bool(self.mask_paths)
