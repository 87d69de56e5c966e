"""The command line as a whole: every command has help; user errors are one line, exit 2."""

from __future__ import annotations

import click
import pytest

from methbuild.cli import LazyGroup, cli as group
from tests.conftest import assert_user_error, run_cli


def _all_commands():
    ctx = click.Context(group)
    out = []

    def walk(cmd, path):
        out.append((path, cmd))
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), path + [name])

    walk(group, [])
    return out


def test_every_command_has_help_text():
    cmds = _all_commands()
    assert any(path == ["ultramnist"] for path, _ in cmds)
    for path, cmd in cmds:
        assert (cmd.help or "").strip(), f"`methbuild {' '.join(path)}` has no help text"
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden and p.name not in ("help", "version"):
                assert (p.help or "").strip(), f"option {p.opts} of `methbuild {' '.join(path)}` has no help"


@pytest.mark.parametrize("args", [["--help"], ["ultramnist", "--help"]])
def test_help_runs(args):
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout


def test_unknown_command_is_one_line():
    assert_user_error(run_cli("no-such-command"), "no-such-command")


def test_lazy_group_lists_only_installed_commands():
    names = LazyGroup().list_commands(click.Context(group))
    assert "ultramnist" in names


@pytest.mark.parametrize("name", ["ultramnist", "lowres", "stats", "downsample", "crawl", "build", "buckets"])
def test_heavy_commands_take_a_scheduler(name):
    cmd = group.get_command(click.Context(group), name)
    assert "scheduler" in {p.name for p in cmd.params}, f"`methbuild {name}` has no --scheduler"
