"""Options and parameter types shared by the commands.

- :data:`FINITE_FLOAT` / :func:`finite_float`: every float option goes through one type that refuses
  NaN and infinities (``click.FloatRange`` lets ``nan`` through: every comparison with NaN is false).
- :data:`SEED`: seeds are non-negative integers below 2**63 everywhere (NumPy's ``SeedSequence`` and
  our seeded hashes take them as they are).
- :func:`bounded_int`: an integer option with explicit bounds, so a count or an ID can never
  overflow int64 or allocate without limit.
- :data:`WORKERS`: ``--workers`` counts, 1 … :data:`MAX_WORKERS` (a typo of a few zeros must not
  start a million processes).
- :func:`scheduler_option`: ``--scheduler`` for the heavy commands.
"""

from __future__ import annotations

import functools
import math

import click

INT64_MAX = 2**63 - 1


class FiniteFloat(click.FloatRange):
    """A float within optional bounds that is never NaN nor infinite."""

    name = "float"

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.strip().lower() in {"nan", "+nan", "-nan", "inf", "+inf", "-inf",
                                                                "infinity", "+infinity", "-infinity"}:
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return rv


def finite_float(min: float | None = None, max: float | None = None, *, min_open: bool = False,
                 max_open: bool = False) -> FiniteFloat:
    """A :class:`FiniteFloat` with the given bounds (the same arguments as ``click.FloatRange``)."""
    return FiniteFloat(min=min, max=max, min_open=min_open, max_open=max_open)


FINITE_FLOAT = FiniteFloat()


def bounded_int(min: int | None = 0, max: int | None = INT64_MAX) -> click.IntRange:
    """An integer option with bounds (default: 0 … 2**63-1)."""
    return click.IntRange(min=min, max=max)


SEED = click.IntRange(min=0, max=INT64_MAX)
SEED_HELP = "a non-negative integer below 2**63"

MAX_WORKERS = 512
WORKERS = bounded_int(1, MAX_WORKERS)


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
