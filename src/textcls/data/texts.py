"""What makes a string usable as a text, checked the same way wherever text comes in: data files,
pair files, `predict` and `explain` arguments, and the Python API.

A text is blank when it holds nothing but whitespace, zero-width characters and NULs: loading
treats it as an empty text, and `predict --input` as a blank line. A text is unusable when it holds
a lone surrogate, which no UTF-8 file can store: a byte that is not UTF-8 (read with
surrogateescape, as files and command lines are) or a JSON `\\ud800` escape without its pair.

Example:
    >>> is_blank(" \\u200b\\x00"), is_blank("a\\u200b")
    (True, False)
    >>> text_problem("café"), text_problem("caf\\udce9")[:46]
    (None, 'expected UTF-8 text, found the byte 0xe9, whic')
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textcls.errors import ConfigError, DataError

# Characters that show nothing and mean nothing on their own: zero-width space, non-joiner, joiner,
# word joiner, the byte-order mark (a zero-width no-break space inside a text) and NUL.
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\x00"
_BLANK = re.compile(f"[\\s{INVISIBLE}]*")
_SURROGATE = re.compile("[\ud800-\udfff]")
# surrogateescape decodes each byte that is not UTF-8 into one of these
_ESCAPED_BYTES = ("\udc80", "\udcff")
# Byte-order marks of encodings other than UTF-8, longest first (UTF-32 LE starts like UTF-16 LE).
_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32 (little-endian)"),
    (codecs.BOM_UTF32_BE, "UTF-32 (big-endian)"),
    (codecs.BOM_UTF16_LE, "UTF-16 (little-endian)"),
    (codecs.BOM_UTF16_BE, "UTF-16 (big-endian)"),
)


def is_blank(text: str) -> bool:
    """Whether `text` holds nothing to classify: only whitespace, zero-width characters and NULs.

    Example:
        >>> is_blank(""), is_blank("\\ufeff \\u2060"), is_blank("no")
        (True, True, False)
    """
    return _BLANK.fullmatch(text) is not None


def text_problem(text: str) -> str | None:
    """Why `text` cannot be read as text (a lone surrogate: a byte that is not UTF-8, or a JSON escape
    without its pair), or None when it can; the message says what was found, where, and the fix."""
    found = _SURROGATE.search(text)
    if found is None:
        return None
    character, position = found.group(), found.start() + 1
    if _ESCAPED_BYTES[0] <= character <= _ESCAPED_BYTES[1]:
        return (
            f"expected UTF-8 text, found the byte 0x{ord(character) - 0xDC00:02x}, which is not UTF-8, at character "
            f"{position}; save or pass the text as UTF-8"
        )
    return (
        f"expected text, found a lone surrogate U+{ord(character):04X} at character {position} (half of a pair, "
        f"such as a JSON '\\\\u{ord(character):04x}' escape without the other half); remove it or write the "
        "character itself"
    )


def check_texts(texts: Iterable[str], where: str = "texts[{index}]") -> list[str]:
    """`texts` (any iterable of strings) as a list. A bare string or a non-iterable is a `ConfigError`; a
    non-string item or a text `text_problem` refuses is a `DataError` naming the item: `where`, formatted
    with its `index` (from 0) and `number` (from 1).

    Example:
        >>> check_texts(text for text in ["Stocks fell.", "Team won."])
        ['Stocks fell.', 'Team won.']
        >>> check_texts(["fine", 2])
        Traceback (most recent call last):
        textcls.errors.DataError: texts[1]: expected a string, found int (2); pass every text as a str
    """
    if isinstance(texts, (str, bytes)):
        raise ConfigError(f"expected a list of texts, found one {type(texts).__name__} ({texts[:40]!r}); pass [text]")
    if not isinstance(texts, Iterable):
        raise ConfigError(
            f"expected a list of texts, found {type(texts).__name__} ({_shown(texts)}); pass a list of strings"
        )
    checked = list(texts)
    for index, text in enumerate(checked):
        place = where.format(index=index, number=index + 1)
        if not isinstance(text, str):
            found = f"{type(text).__name__} ({_shown(text)})"
            raise DataError(f"{place}: expected a string, found {found}; pass every text as a str")
        problem = text_problem(text)
        if problem is not None:
            raise DataError(f"{place}: {problem}")
    return checked


def _shown(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."


def decode_file(path: Path) -> str:
    """The text of a UTF-8 file (a UTF-8 byte-order mark dropped); a byte that is not UTF-8 becomes a lone
    surrogate, so only the rows holding one are bad (`text_problem`). A file that starts with another
    encoding's byte-order mark (UTF-16, UTF-32) is a `DataError` naming the encoding and the fix.

    Example:
        >>> decode_file(Path("train.csv"))[:10]  # doctest: +SKIP
        'text,label'
    """
    content = path.read_bytes()
    for bom, encoding in _BOMS:
        if content.startswith(bom):
            raise DataError(
                f"{path}: expected UTF-8 text, found {encoding} (the file starts with its byte-order mark); "
                "re-save the file as UTF-8 (in an editor: Save As, encoding UTF-8; or "
                f"iconv -f {encoding.split()[0]} -t UTF-8)"
            )
    return content.decode("utf-8-sig", errors="surrogateescape")
