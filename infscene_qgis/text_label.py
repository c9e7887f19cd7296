"""The panel's lines of text: wrapped, selectable, and never wider than the panel.

A word longer than the panel (a result's path after `done:`, a model folder in the engine's status) cannot wrap and
widened the whole dock; such a label takes the width the panel gives it instead, and shows its whole text as tooltip.
"""
from __future__ import annotations

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QLabel, QSizePolicy


class TextLabel(QLabel):
    """A QLabel for changing text: word-wrapped, selectable, its width the layout's; `setText` keeps a tooltip of the
    whole text (the plain text may be cut at the panel's edge where a word is longer than the panel)."""

    def __init__(self, text: str = "", tooltip: str = "") -> None:
        super().__init__()
        self._fixed_tooltip = tooltip
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextSelectableByMouse)
        policy = self.sizePolicy()
        policy.setHorizontalPolicy(QSizePolicy.Ignored)
        self.setSizePolicy(policy)
        self.setMinimumWidth(1)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt override
        super().setText(text)
        self.setToolTip(self._fixed_tooltip or text)
