"""Options shared by the heavy commands."""

from __future__ import annotations

import functools

import click


def scheduler_option(f):
    """Add ``--scheduler``: run the command's tasks on a Dask cluster instead of the local pool."""

    @click.option("--scheduler", default=None, metavar="ADDRESS",
                  help="Run the work on Dask: tcp://HOST:PORT of a running scheduler, or local:N to start N "
                       "worker processes on this machine. Outputs are identical to a local run; they must go to a "
                       "path every worker can reach. [default: a local process pool]")
    @functools.wraps(f)
    def wrapper(*args, scheduler=None, **kwargs):
        from methbuild.executor import use_scheduler

        with use_scheduler(scheduler):
            return f(*args, **kwargs)

    return wrapper
