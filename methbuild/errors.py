"""Errors a user can cause and fix.

Library code raises :class:`UserError` for bad input (a bad argument, a missing file, an
unwritable output); the CLI turns it into one line on stderr and exit status 2.
Anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A mistake in what the user asked for; the message says what and how to fix it."""

    exit_code = 2
