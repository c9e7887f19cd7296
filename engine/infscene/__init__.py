"""InfScene: seamless diffusion super-resolution of georeferenced rasters of any size.

The package never imports QGIS. Its folders are layers (docs/architecture.md): diffusion (the method),
models (the families behind one registry), raster (files in and out), training, execution (where the model
work runs), iceplant; plan and run drive one run, cli exposes it. One run's data flow:
raster.io (input window) -> plan -> diffusion.grid (patches) -> diffusion.loop + fusion (step loop, through
an executor) -> diffusion.canvas -> raster.io (writer).
"""

__version__ = "0.1.0"


def _check_working_folder() -> None:
    """Stop in one line when the current folder has been deleted: oneMKL, loaded with torch, then kills the process
    (exit 2, "Intel oneMKL FATAL ERROR") with no Python exception anyone could catch or explain. This runs before any
    module of the package, so before torch; SystemExit with a message is one line on stderr and exit status 1 for the
    command line, and an exception a notebook can catch."""
    import os

    try:
        os.getcwd()
    except FileNotFoundError:
        raise SystemExit("infscene: the current folder no longer exists (it was deleted or moved away): cd to an "
                         "existing folder and rerun") from None


_check_working_folder()
