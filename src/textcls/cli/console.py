"""What every textcls command line shares: the two consoles, logging to stderr, and the one way a
library call's user error becomes a message and exit code 2.

Example:
    >>> with library_call():            # doctest: +SKIP
    ...     metrics = evaluate(run_dir)
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Annotated

import typer
from rich.console import Console

from textcls.errors import TextclsError

# Piped output (CI logs, `| tee`) gets wide tables instead of rich's 80-column default.
stdout = Console(width=None if sys.stdout.isatty() else 160)
stderr = Console(stderr=True)

# The one `--verbose` flag, shared by every command: `verbose: Verbose = False`.
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")]


def setup_logging(verbose: bool) -> None:
    """Rich log lines on stderr; INFO for textcls (DEBUG with --verbose), warnings for the rest."""
    from rich.logging import RichHandler

    handler = RichHandler(console=stderr, show_path=False, show_time=False)
    logging.basicConfig(level=logging.WARNING, handlers=[handler], format="%(message)s", force=True)
    # Under torchrun every process runs this; only rank 0 tells the story.
    main_process = os.environ.get("RANK", "0") == "0"
    level = (logging.DEBUG if verbose else logging.INFO) if main_process else logging.WARNING
    logging.getLogger("textcls").setLevel(level)
    with contextlib.suppress(ImportError):
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_warning()


@contextlib.contextmanager
def library_call() -> Iterator[None]:
    """Run library code: what libraries print goes to stderr (stdout is for results); user errors exit 2."""
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    except TextclsError as error:
        fail(error)


def fail(error: Exception) -> None:
    """Print `error` as one line on stderr and exit with code 2."""
    from rich.markup import escape

    # Messages quote lists like ['a', 'b']: escape them so rich does not read them as markup.
    stderr.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)
