# QGIS plugin targets; included from the Makefile (`include plugin.mk`).
#   make zip   -> dist/infscene_qgis.zip, installable with Plugins > Install from ZIP
#   make qgis  -> QGIS desktop with the plugin enabled in a separate profile (needs a display)

PLUGIN_PYTHON ?= python3
QGIS_PROFILES ?= build/qgis-profiles

.PHONY: zip qgis

zip:
	$(PLUGIN_PYTHON) scripts/build_plugin_zip.py dist/infscene_qgis.zip

qgis:
	scripts/qgis_profile.sh $(QGIS_PROFILES)
	qgis --noversioncheck --profiles-path $(QGIS_PROFILES)
