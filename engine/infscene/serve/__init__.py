"""`infscene serve`: a live super-resolved XYZ tile layer over one raster, made on demand (issue 20).

zooms.py (which zoom levels exist and what a tile covers), blocks.py (the map-anchored blocks the model runs
over), render.py (pixels to a transparent 256 px PNG), source.py (the raster, checked at start and again when
its file changes, and what its tiles are keyed by), cache.py (the disk cache, one bound for its folder),
scheduler.py (one block at a time, requests no longer wanted dropped), tiles.py (one tile, from the cache, the
source or the blocks), server.py (HTTP and the activity events); its subcommand is commands/serve.py. Nothing
below this package imports it.
"""
