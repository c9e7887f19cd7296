"""The plugin loads the way QGIS loads it (classFactory, initGui) and unloads without leftovers."""
from __future__ import annotations

from qgis.core import QgsApplication

import infscene_qgis


def test_init_gui_registers_provider_and_panel_and_unload_removes_them(qgis_iface, qgis_processing):
    plugin = infscene_qgis.classFactory(qgis_iface)
    plugin.initGui()
    try:
        provider = QgsApplication.processingRegistry().providerById("infscene")
        assert provider is not None
        assert {alg.id() for alg in provider.algorithms()} == {"infscene:superresolve", "infscene:iceplant"}
        assert not plugin.dock.isVisible()  # opened from the toolbar, not on every start
        assert plugin.dock.runs is plugin.runs  # the panel is a form: the plugin's controller runs what it asks
        assert plugin.action.isCheckable()
    finally:
        plugin.unload()
    assert QgsApplication.processingRegistry().providerById("infscene") is None
    assert plugin.dock is None and plugin.provider is None and plugin.runs is None
