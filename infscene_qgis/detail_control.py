"""The panel's Detail control: faithful [slider] detailed, and 'model default' under it.

One widget with one job, so the panel only asks it for the detail to send and hands it the planning call's answer:
whether the model takes a detail at all is the engine's word (the answer's `unavailable["detail"]`; a detail a model
takes only at its ends is among the answer's problems), and what it adds is `detail_note`, a plain function of the
model's summary, tested without a panel.
"""
from __future__ import annotations

from typing import Optional

from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from .engine_events import ModelSummary, QuickPlan
from .sr_options import OPTION, help_text

DETAIL = OPTION["detail"]
# The option's ends (0 faithful, 1 detailed) as slider positions 0..DETAIL_SLIDER_MAX, in the option's steps (0.05).
DETAIL_SLIDER_MAX = 100
DETAIL_SLIDER_STEP = round(DETAIL.step * DETAIL_SLIDER_MAX / (DETAIL.maximum - DETAIL.minimum))
DEFAULT_TOOLTIP = ("Send no detail: the model's own (its config.json default_detail, 1 unless set). "
                   "Untick to choose with the slider; e2diffsr models only, SR3 models refuse a detail.")


class DetailControl(QWidget):
    """The slider's line (the two words at its ends, the value sent) and the 'model default' box under it (a dock is
    narrow). `changed` is emitted when the detail to send changes."""

    changed = pyqtSignal()

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self._tooltip = help_text(DETAIL)
        self._unavailable: Optional[str] = None  # why the planned model takes no detail (None: it does)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, DETAIL_SLIDER_MAX)
        self.slider.setSingleStep(DETAIL_SLIDER_STEP)
        self.slider.setPageStep(5 * DETAIL_SLIDER_STEP)
        self.slider.setTickInterval(5 * DETAIL_SLIDER_STEP)
        self.slider.setTickPosition(QSlider.TicksBelow)
        self.slider.setValue(DETAIL_SLIDER_MAX)
        self.slider.setToolTip(self._tooltip)
        faithful, detailed = (QLabel(end) for end in DETAIL.ends)
        for end in (faithful, detailed):
            end.setToolTip(self._tooltip)
        self.value_label = QLabel()
        self.value_label.setMinimumWidth(self.value_label.fontMetrics().horizontalAdvance("0.00") + 4)
        self.default_check = QCheckBox(DETAIL.auto)
        self.default_check.setToolTip(DEFAULT_TOOLTIP)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        line = QWidget()
        row = QHBoxLayout(line)
        row.setContentsMargins(0, 0, 0, 0)
        for widget, stretch in ((faithful, 0), (self.slider, 1), (detailed, 0), (self.value_label, 0)):
            row.addWidget(widget, stretch)
        column.addWidget(line)
        column.addWidget(self.default_check)
        self.default_check.setChecked(True)
        self.slider.setEnabled(False)
        self.slider.valueChanged.connect(self._slider_moved)
        self.default_check.toggled.connect(self._default_toggled)

    def detail(self) -> Optional[float]:
        """The detail the panel sends: None with 'model default' ticked, else the slider's 0..1."""
        if self.default_check.isChecked():
            return None
        return self.slider.value() / DETAIL_SLIDER_MAX

    def set_detail(self, detail: Optional[float]) -> None:
        """Show `detail` (None: 'model default'); the slider's and the box's own signals update the rest."""
        if detail is not None:
            self.slider.setValue(round(min(max(detail, DETAIL.minimum), DETAIL.maximum) * DETAIL_SLIDER_MAX))
        self.default_check.setChecked(detail is None)

    def apply_plan(self, plan: Optional[QuickPlan]) -> None:
        """Turn the slider off, with the engine's reason as its tooltip, for a model that takes no detail; 'model
        default' stays a way back."""
        self._unavailable = plan.unavailable.get("detail") if plan is not None else None
        self._show_availability()

    def _show_availability(self) -> None:
        reason = self._unavailable
        self.default_check.setEnabled(reason is None or not self.default_check.isChecked())
        self.slider.setEnabled(reason is None and not self.default_check.isChecked())
        self.slider.setToolTip(f"Not for this model: {reason}.\n\n{self._tooltip}" if reason else self._tooltip)
        self.default_check.setToolTip(f"Not for this model: {reason}.\n\n{DEFAULT_TOOLTIP}" if reason else DEFAULT_TOOLTIP)

    def _slider_moved(self, value: int) -> None:
        """Keep the slider on its steps of 5 (a drag passes through every integer) and show the value sent."""
        snapped = round(value / DETAIL_SLIDER_STEP) * DETAIL_SLIDER_STEP
        if snapped != value:
            self.slider.setValue(snapped)
            return
        self._show_value()
        self.changed.emit()

    def _default_toggled(self, _checked: bool) -> None:
        self._show_availability()
        self._show_value()
        self.changed.emit()

    def _show_value(self) -> None:
        detail = self.detail()
        self.value_label.setText("" if detail is None else f"{detail:.2f}")


def detail_note(model: Optional[ModelSummary], detail: Optional[float]) -> str:
    """One line on what the model adds to the input at this detail."""
    if model is None:
        return ""
    if model.family != DETAIL.family:
        return ("SR3: every pixel is drawn by the diffusion; texture is invented and differs from seed to seed "
                "(Samples maps where).")
    value = model.default_detail if detail is None else detail
    if value == 0.0:
        return ("Faithful: a sharpened interpolation (the regression branch); nothing is invented, every seed gives "
                "the same result.")
    if not model.texture_head:
        return ("This model has no texture head: a sharpened interpolation plus the latent diffusion's small "
                "corrections; expect little new texture.")
    if value >= 1.0:
        return ("Detailed: adds texture the input does not contain (drawn by the texture head); it differs from seed "
                "to seed (Samples maps where).")
    return (f"Detail {value:.2f}: a sharpened interpolation with {value:.0%} of the drawn texture, which is invented "
            "and differs from seed to seed.")
