"""The ``methbuild`` command line: a thin ``click`` layer over the Python API.

Each command lives in its own module ``methbuild/cli/<name>.py`` exposing ``command`` and is
imported only when it runs, so ``methbuild --help`` stays fast and a command's heavy
dependencies (pyvips, aiohttp, dask) load only for that command.
Nothing in the package imports this module.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import signal
import sys

import click

from methbuild import __version__
from methbuild.errors import DISK_FULL, UserError

# command name -> module under methbuild.cli (one module per command).
COMMANDS: dict[str, str] = {
    "ultramnist": "ultramnist",
    "megapixel-mnist": "megapixel_mnist",
    "met": "met",
    "crawl": "crawl",
    "mirror": "mirror",
    "lowres": "lowres",
    "stats": "stats",
    "downsample": "downsample",
    "build": "build",
    "recipes": "recipes",
    "buckets": "buckets",
    "report": "report",
    "demo": "demo",
    "sr": "sr",
    "export": "export",
}


def _module_name(cmd: str) -> str:
    return f"methbuild.cli.{COMMANDS[cmd]}"


class LazyGroup(click.Group):
    """Loads each command's module on first use; lists only commands that are installed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(c for c in COMMANDS if importlib.util.find_spec(_module_name(c)) is not None)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS or importlib.util.find_spec(_module_name(cmd_name)) is None:
            return None
        return importlib.import_module(_module_name(cmd_name)).command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="methbuild")
def cli() -> None:
    """Build high-resolution, variable-shape image datasets.

    MetH (Medium, Cultures, Period, SR) from the Metropolitan Museum's open-access
    collection, UltraMNIST, downsampled ImageNet, and statistics of any image collection.
    Run `methbuild COMMAND --help` for each command.
    """


def _fail(prog: str, message: str, code: int = 2) -> None:
    message = " ".join(str(message).split())  # one line, whatever the source message looked like
    click.echo(f"{prog}: error: {message}", err=True)
    sys.exit(code)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like a Ctrl-C, so the same clean-up runs (pools stop,
    state is saved, temporary files go) instead of the process vanishing mid-write."""


def _on_sigterm(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    raise Terminated()


def _interrupt_status(exc: BaseException) -> int:
    """130 for Ctrl-C, 143 for SIGTERM (128 + the signal, as a shell reports it)."""
    cause = exc if isinstance(exc, KeyboardInterrupt) else exc.__cause__ or exc.__context__
    return 128 + signal.SIGTERM if isinstance(cause, Terminated) else 128 + signal.SIGINT


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the CLI; user errors become one stderr line and exit status 2."""
    prog = "methbuild"
    previous = None
    with contextlib.suppress(ValueError):  # not the main thread (main() called from a test's thread)
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        _run(prog, argv)
    finally:
        if previous is not None:  # main() called in-process (tests): give the caller its handler back
            signal.signal(signal.SIGTERM, previous)


def _run(prog: str, argv: list[str] | None) -> None:
    # click >= 8.2 raises this for a bare `methbuild` (or a group without its subcommand).
    no_args = getattr(click.exceptions, "NoArgsIsHelpError", ())
    try:
        rv = cli.main(args=argv, prog_name=prog, standalone_mode=False)
    except no_args as exc:  # type: ignore[misc]
        click.echo(exc.format_message())
        sys.exit(0)
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        if isinstance(exc, click.exceptions.Abort) and isinstance(exc.__cause__, EOFError):
            # click turns any EOFError into Abort (meant for prompts, which we do not use): an EOFError
            # here is a bug, not an interruption, so it keeps its traceback.
            raise exc.__cause__
        click.echo(f"{prog}: interrupted; rerun the same command to resume", err=True)
        sys.exit(_interrupt_status(exc))
    except click.ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else prog
        _fail(where, exc.format_message(), exc.exit_code if exc.exit_code else 2)
    except UserError as exc:
        _fail(prog, str(exc), exc.exit_code)
    except BrokenPipeError:  # `methbuild ... | head` (an OSError: caught before the general case)
        sys.exit(0)
    except OSError as exc:
        # A full disk (or quota) is the environment, not a bug: one line, exit 1, and the run's state is
        # whatever its atomic writes left, so freeing space and rerunning resumes it.
        if exc.errno not in DISK_FULL:
            raise
        where = f" writing {exc.filename!r}" if exc.filename else ""
        _fail(prog, f"no space left on device{where}; free some space and rerun the same command to resume", 1)
    if isinstance(rv, int) and rv:
        sys.exit(rv)
