"""`python -m infscene` runs the command line (how the QGIS plugin starts the engine)."""
import sys

from .cli import main

sys.exit(main())
