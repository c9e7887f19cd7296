"""The panel's widgets for the options of the table (sr_options.py): a spin box, a choice list or a line of text,
with the table's range, default, choice labels, unit and help.

Each widget reads and writes the option's own value, None for "auto": a number box keeps one slot below its range
for auto and shows the table's words for it there ("model default"), so no sentinel number leaves the widget.
"""
from __future__ import annotations

from typing import Any, Optional

from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox, QWidget

from .sr_options import FLOAT, INT, Option, help_text

INT_LIMIT = 2**31 - 1  # a spin box's largest integer, for an option without a maximum
FLOAT_LIMIT = 1e6
CHOICE_CHARACTERS = 14  # a closed choice list's least width, in characters; the panel's width gives it more


class _OptionWidget:
    """What the panel asks of an option's widget: its option, its value and set_value, and `changed`."""

    option: Option

    def _describe(self: Any, option: Option) -> None:
        self.option = option
        text = help_text(option)
        self.setToolTip(text[:1].upper() + text[1:])


class _NumberField(_OptionWidget):
    """A number box's value: None on its lowest slot where that slot is auto."""

    _auto = False

    def option_value(self: Any) -> Any:
        return None if self._auto and self.value() == self.minimum() else self.value()

    def set_option_value(self: Any, value: Any) -> None:
        self.setValue(self.minimum() if value is None else value)


class IntegerField(QSpinBox, _NumberField):
    """A whole number; the slot under the range is auto where the option has no default."""

    changed = pyqtSignal()

    def __init__(self, option: Option) -> None:
        super().__init__()
        self._describe(option)
        self._auto = option.default is None
        low = int(option.minimum) - (1 if self._auto else 0)
        self.setRange(low, INT_LIMIT if option.maximum is None else int(option.maximum))
        if option.auto:
            self.setSpecialValueText(option.auto)
        self.setSuffix(option.suffix)
        self.valueChanged.connect(self.changed)


class DecimalField(QDoubleSpinBox, _NumberField):
    """A fractional number; auto (where the option has no default) is the range's excluded minimum or the slot under
    it, and an excluded minimum is otherwise one last decimal inside."""

    changed = pyqtSignal()

    def __init__(self, option: Option) -> None:
        super().__init__()
        self._describe(option)
        self._auto = option.default is None and option.initial is None
        self.setDecimals(option.decimals)
        self.setSingleStep(option.step or 1.0)
        low = float(option.minimum)
        if self._auto and not option.above_minimum:
            low -= option.step or 1.0
        elif not self._auto and option.above_minimum:
            low += 10.0 ** -option.decimals
        self.setRange(low, FLOAT_LIMIT if option.maximum is None else float(option.maximum))
        if self._auto and option.auto:
            self.setSpecialValueText(option.auto)
        self.setSuffix(option.suffix)
        self.valueChanged.connect(self.changed)


class ChoiceField(QComboBox, _OptionWidget):
    """One of the option's choices, shown by their labels."""

    changed = pyqtSignal()

    def __init__(self, option: Option) -> None:
        super().__init__()
        self._describe(option)
        self.addItems(list(option.labels))
        # As wide as the panel lets it be, not as its longest label: the list shows every label whole.
        self.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(CHOICE_CHARACTERS)
        self.currentIndexChanged.connect(self.changed)

    def option_value(self) -> str:
        return self.option.values[self.currentIndex()]

    def set_option_value(self, value: Optional[str]) -> None:
        values = self.option.values
        self.setCurrentIndex(values.index(value) if value in values else values.index(self.option.form_default))


class TextField(QLineEdit, _OptionWidget):
    """Free text (band numbers): empty is auto, whose words show as the placeholder."""

    changed = pyqtSignal()

    def __init__(self, option: Option) -> None:
        super().__init__()
        self._describe(option)
        self.setPlaceholderText(option.auto)
        self.editingFinished.connect(self.changed)

    def option_value(self) -> Optional[str]:
        return self.text().strip() or None

    def set_option_value(self, value: Optional[str]) -> None:
        self.setText(value or "")


def option_widget(option: Option) -> QWidget:
    """The widget of one option of the table, by its kind."""
    if option.choices:
        return ChoiceField(option)
    if option.kind == INT:
        return IntegerField(option)
    if option.kind == FLOAT:
        return DecimalField(option)
    return TextField(option)
