"""The training form, generated from ``TrainConfig.settings()``: the engine's dataclass is the
one place that defines a setting, its default, its choices and its help (shown as tooltip).

Common settings are shown; the others sit under a collapsed "advanced" section. The only
GUI-specific choices here are presentation: which settings are common, a label, the widget's
range, and one default (threads: one core is left to the viewer).
"""

from __future__ import annotations

import math
import os
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, LineEdit, SpinBox
from magicgui.widgets.bases import ValueWidget

from napari_pal.method.config import Setting, TrainConfig

COMMON = ("strategy", "epochs", "size", "batch_size", "lr", "lam", "threads")
LABELS = {"lam": "λ", "batch_size": "batch size", "qam_width": "QAM width",
          "qam_input": "QAM input", "qam_loss": "QAM loss", "warmup_epochs": "warm-up epochs",
          "part_counts": "part counts"}
#: the widget's own defaults, where the CLI's do not fit an interactive viewer
GUI_DEFAULTS = {"threads": (max(1, (os.cpu_count() or 2) - 1),
                            "; the widget leaves one core to the viewer")}


def setting_widget(s: Setting) -> ValueWidget:
    """The magicgui widget of one setting (its value is the setting's default)."""
    default, extra = GUI_DEFAULTS.get(s.name, (s.default, ""))
    common = {"name": s.name, "label": LABELS.get(s.name, s.name), "tooltip": s.help + extra}
    if s.choices:
        return ComboBox(choices=s.choices, value=default, **common)
    if s.type is bool:
        return CheckBox(value=bool(default), **common)
    if s.type is int:
        return SpinBox(value=int(default), min=min(0, int(default)), max=100_000, **common)
    if s.type is float:
        step = 10.0 ** math.floor(math.log10(abs(default))) / 10 if default else 0.1
        w = FloatSpinBox(value=float(default), min=0.0, max=1e4, step=step, **common)
        w.native.setDecimals(max(2, 1 - int(math.floor(math.log10(step)))))
        return w
    return LineEdit(value=str(default), **common)


class TrainingForm:
    """The settings widgets: ``form[name].value`` reads or sets one, ``config()`` builds the
    TrainConfig (which validates the values and raises PalError with the fix)."""

    def __init__(self) -> None:
        settings = TrainConfig.settings()
        self.common = Container(widgets=[setting_widget(s) for s in settings
                                         if s.name in COMMON], labels=True)
        self.advanced = Container(widgets=[setting_widget(s) for s in settings
                                           if s.name not in COMMON], labels=True)
        self.common.native.setContentsMargins(0, 0, 0, 0)
        self._widgets = {w.name: w for w in (*self.common, *self.advanced)}

    def __getitem__(self, name: str) -> ValueWidget:
        return self._widgets[name]

    def __iter__(self):
        return iter(self._widgets.values())

    def values(self) -> dict[str, Any]:
        return {name: w.value for name, w in self._widgets.items()}

    def config(self) -> TrainConfig:
        return TrainConfig(**self.values())

    def native_widgets(self):
        """(common, advanced) Qt widgets: the panel lays them out."""
        return self.common.native, self.advanced.native
