"""Errors a user can cause and fix.

Library code raises :class:`UserError` for bad input (a bad argument, a missing file, an
unwritable output); the CLI turns it into one line on stderr and exit status 2.
Anything else is a bug and keeps its traceback.
"""

import errno

# errno values that mean "the disk is full": not a mistake of the user nor a bad item, the environment.
# The CLI reports them as one line with exit status 1; the executor stops a run at the first one.
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


class UserError(Exception):
    """A mistake in what the user asked for; the message says what and how to fix it."""

    exit_code = 2
