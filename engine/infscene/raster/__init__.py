"""Rasters in and out: windows, bands and their scaling to model units, resampling, guided extra bands, atomic
verified GeoTIFF writes in a run's workspace, the side-by-side preview and the quality metrics. No model here."""
