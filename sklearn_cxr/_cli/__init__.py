"""The ``sklearn-cxr`` command line: train, predict, evaluate, demo.

Every command calls the package's functions from the modules that define
them; errors are reported as one line on stderr with a non-zero exit status
(``--debug`` shows the traceback). One module a command; :mod:`._common`
holds what they share.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .._backbones import WeightsUnavailableError
from ._common import EXIT_SKIPPED, PROG, CommandError, Parser, one_line
from ._demo import add_demo_command
from ._evaluate import add_evaluate_command
from ._predict import add_predict_command
from ._train import add_train_command

__all__ = ["main", "build_parser", "EXIT_SKIPPED"]


def build_parser():
    """The argument parser of ``sklearn-cxr`` (also used by the docs)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars or tables"
    )
    common.add_argument(
        "-v", "--verbose", action="store_true", help="log what happens (INFO)"
    )
    common.add_argument(
        "--debug", action="store_true", help="show the traceback of errors"
    )

    parser = Parser(
        prog=PROG,
        description="Pneumonia detection on chest X-rays by transfer learning, "
        "the scikit-learn way.",
        epilog=f"Run '{PROG} COMMAND --help' for the options of a command. Exit "
        "status: 0 success, 1 error, 2 usage error, "
        f"{EXIT_SKIPPED} 'predict --skip-bad' skipped unreadable images, 130 "
        "interrupted.",
    )
    from .._version import __version__

    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=Parser
    )
    add_train_command(commands, common)
    add_predict_command(commands, common)
    add_evaluate_command(commands, common)
    add_demo_command(commands, common)
    return parser


def main(argv=None):
    """Run the command line; return the exit status.

    Parameters
    ----------
    argv : list of str, default=None
        The arguments; None reads ``sys.argv[1:]``.

    Returns
    -------
    status : int
        0 on success, 1 on an error, 2 on a usage error, 3
        (:data:`EXIT_SKIPPED`) when ``predict --skip-bad`` skipped unreadable
        images, 130 when interrupted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    # The package's log records (such as the notice that ImageNet weights
    # are unavailable) are shown as plain lines on stderr, once.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    package_logger = logging.getLogger("sklearn_cxr")
    saved = package_logger.level, package_logger.propagate
    package_logger.addHandler(handler)
    package_logger.setLevel(logging.INFO if args.verbose else logging.WARNING)
    package_logger.propagate = False
    prefix = f"{PROG} {args.command}: error:"
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        message = one_line(exc)
        if isinstance(exc, WeightsUnavailableError):
            message += (
                " (or pass --backbone timm:tf_efficientnet_lite0 --weights "
                "IMAGENET for offline ImageNet weights, or --weights none)"
            )
        elif not isinstance(
            exc, (CommandError, ValueError, TypeError, OSError, ImportError)
        ):
            message = (
                f"unexpected {type(exc).__name__}: {message} (rerun with --debug "
                "for the traceback and report it)"
            )
        print(f"{prefix} {message}", file=sys.stderr)
        return 1
    finally:
        package_logger.removeHandler(handler)
        package_logger.setLevel(saved[0])
        package_logger.propagate = saved[1]
