"""InfScene: seamless diffusion super-resolution of georeferenced rasters of any size.

The package never imports QGIS. Modules follow the data flow of one run:
raster_io (input window) -> grid (patches) -> sampler + fusion (step loop) -> canvas -> raster_io (writer),
driven by pipeline and exposed by cli.
"""

__version__ = "0.1.0"
