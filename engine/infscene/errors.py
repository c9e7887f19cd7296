"""Exceptions the engine raises for conditions a user can act on.

Every message is a single line that says what is wrong and what to do, so the CLI and the
QGIS plugin can show it as it is.
"""


class InfSceneError(Exception):
    """A problem with the user's input or environment (bad file, extent, bands, disk...)."""


class Cancelled(InfSceneError):
    """The run was cancelled by the caller; nothing was written."""

    def __init__(self, message: str = "cancelled by the user; no output was written") -> None:
        super().__init__(message)


class InfSceneWarning(UserWarning):
    """Something the user should know that does not stop the run (one line): an extent clipped to the
    raster, a scale outside the model's trained range, a raster without georeference..."""
