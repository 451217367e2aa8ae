"""ranklist command line: one module per group of subcommands, one function per subcommand.

Each module of COMMANDS defines `add_parser(subparsers)`, which adds its subcommands and binds each
to its function with `set_defaults(run=function)`; a function takes the parsed arguments.

Every failure the user can fix (a missing folder, a bad config value, an incompatible checkpoint)
ends in one line on stderr and exit code 2. Real bugs and out-of-memory keep their traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys

from ranklist.errors import UserError, one_line

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # the shell's code for a command ended by SIGINT
COMMANDS = (
    "ranklist.cli.train",
    "ranklist.cli.evaluate",
    "ranklist.cli.study",
    "ranklist.cli.index",
    "ranklist.cli.data",
    "ranklist.cli.export",
    "ranklist.cli.serve",
    "ranklist.cli.tune",
    "ranklist.cli.reproduce",
)


def build_parser() -> argparse.ArgumentParser:
    """The `ranklist` argument parser, one subcommand per command module."""
    parser = argparse.ArgumentParser(prog="ranklist", description="Ranked List Loss for deep metric learning")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        importlib.import_module(module).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line `argv`; return the exit status (user errors are one line on stderr)."""
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (UserError, FileNotFoundError, ValueError) as error:
        print(f"ranklist: error: {one_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EISDIR, errno.ENOTDIR):
            raise
        print(f"ranklist: error: {one_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C: every file a user relies on is written atomically, so nothing is half-written
        print(f"ranklist: interrupted ({args.command}); no file was left half-written", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0
