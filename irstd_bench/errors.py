"""Errors raised for bad user input.

Every problem a user can fix (a missing file, a corrupt PNG, an unknown layout) raises
:class:`InputError` with a one-line message naming the file or value. The CLI turns it into
``Error: <message>`` on stderr and exit code 2; library users catch it like any ``ValueError``.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input a user can fix; the message is one line and names the file or value."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class DatasetDefectWarning(UserWarning):
    """A known defect of a public dataset release was met and handled (see the message)."""
