"""A griffe extension for the Python API page: an "Example:" section is read as "Examples:".

textcls's docstrings head their doctests with "Example:". Google style as griffe parses it knows
only "Examples:", and would show the doctest as plain text; with this rename it is a code block.
"""

import re
from typing import Any

import griffe

_EXAMPLE_HEADING = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename every docstring's "Example:" heading to "Examples:" before it is parsed."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        _rename(obj)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        _rename(pkg)  # a package's own docstring: on_object covers only what it holds


def _rename(obj: griffe.Object) -> None:
    if obj.docstring is not None:
        obj.docstring.value = _EXAMPLE_HEADING.sub(r"\1Examples:", obj.docstring.value)
