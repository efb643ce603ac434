"""The three ways a dataset folder stores its masks (read by dataset.py, written by
writing.py)."""

from __future__ import annotations

import enum


class Layout(str, enum.Enum):
    CLASS_FOLDERS = "class_folders"
    LABEL_IMAGE = "label_image"
    MULTICHANNEL = "multichannel_tiff"
