"""User-facing errors.

Every problem caused by the user's input (a bad file, column, value or option) is raised as
:class:`FairlatentError` with a message that names the file, row, column or value at fault. The CLI
prints these without a traceback and exits with status 2; anything else is a bug and keeps its traceback.
"""


class FairlatentError(Exception):
    """An error in the user's input or environment, with a message meant for a person."""
