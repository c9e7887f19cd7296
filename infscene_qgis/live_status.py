"""The live layers' line in the QGIS status bar: what the tile servers are doing, summed over all of them.

A live layer's tiles appear one by one as the engine super-resolves them; without this line a slow tile looks like a
broken layer. The line is empty (hidden) when every server is idle.
"""
from __future__ import annotations

from typing import Any, Iterable, Optional

from qgis.PyQt.QtWidgets import QLabel

from .protocol import TileActivity


WIDEST = "InfScene live: starting 2 servers, 99 rendering, 999 queued"


def activity_text(activities: Iterable[Optional[TileActivity]], starting: int = 0) -> str:
    """`InfScene live: 3 rendering, 12 queued` (and servers still starting); '' when there is nothing to say. Short:
    it shares QGIS's status bar with the coordinates and the scale."""
    known = [activity for activity in activities if activity is not None]
    rendering = sum(activity.rendering for activity in known)
    queued = sum(activity.queued for activity in known)
    parts = []
    if starting:
        parts.append(f"starting {_count(starting, 'server')}")
    if rendering or queued:
        parts.append(f"{rendering} rendering, {queued} queued")
    return f"InfScene live: {', '.join(parts)}" if parts else ""


def activity_tooltip(activities: Iterable[Optional[TileActivity]]) -> str:
    """Tiles finished since the servers started, and how many of them came from the cache."""
    known = [activity for activity in activities if activity is not None]
    done = sum(activity.done for activity in known)
    cached = sum(activity.cached for activity in known)
    return f"InfScene live layers: {_count(done, 'tile')} served, {cached} of them from the cache"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


class LiveStatus:
    """One QLabel in the status bar, shared by every live layer; removed when the plugin unloads."""

    def __init__(self, iface: Any) -> None:
        self._iface = iface
        self.label = QLabel()
        self.label.setMaximumWidth(self.label.fontMetrics().horizontalAdvance(WIDEST))  # never squeezes QGIS's own
        self.label.hide()
        iface.statusBarIface().addPermanentWidget(self.label, 0)

    def show(self, activities: Iterable[Optional[TileActivity]], starting: int = 0) -> None:
        activities = list(activities)
        text = activity_text(activities, starting)
        self.label.setText(text)
        self.label.setToolTip(activity_tooltip(activities))
        self.label.setVisible(bool(text))

    def dispose(self) -> None:
        self._iface.statusBarIface().removeWidget(self.label)
        self.label.deleteLater()
