"""InfScene: seamless diffusion super-resolution of georeferenced rasters of any size.

The package never imports QGIS. Its folders are layers (docs/architecture.md): diffusion (the method),
models (the families behind one registry), raster (files in and out), training, execution (where the model
work runs), iceplant; plan and run drive one run, cli exposes it. One run's data flow:
raster.io (input window) -> plan -> diffusion.grid (patches) -> diffusion.loop + fusion (step loop, through
an executor) -> diffusion.canvas -> raster.io (writer).
"""

__version__ = "0.1.0"
