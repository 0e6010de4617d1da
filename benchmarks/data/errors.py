"""The one error type of the data path."""

from __future__ import annotations


class DataError(Exception):
    """Bad or missing input data. The message names the file or folder, the value found and the fix."""


class DataMissing(DataError):
    """The dataset's folder or files are absent (as opposed to present but broken)."""
