"""`python -m infscene` runs the command line (how the QGIS plugin starts the engine)."""
import sys

from .commands.main import main

sys.exit(main())
