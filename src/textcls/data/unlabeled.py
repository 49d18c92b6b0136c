"""Unlabelled texts, read one way for every command that takes them: `pretrain --data`, `distill
--unlabeled` and `train --family setfit --setfit-unlabeled`.

A source is a .txt file (one text a line, blank lines dropped), a folder of .txt files, a table or
split folder as `train` reads it (its train file; labels ignored), or a hub dataset id (its train
split). A line that is not UTF-8 text is refused with its file and line number.

Example:
    >>> read_unlabeled_texts("news.txt")[:1]   # doctest: +SKIP
    ['Stocks fell sharply.']
"""

from __future__ import annotations

from pathlib import Path

from textcls.data.loading import TABLE_SUFFIXES, read_texts
from textcls.data.texts import decode_file, is_blank, text_problem
from textcls.errors import DataError


def read_unlabeled_texts(source: str, text_columns: tuple[str, ...] | None = None) -> list[str]:
    """Unlabelled texts from a .txt file, a folder of .txt files, a table or split folder (its train
    file, preferred over .txt files beside it), or a hub dataset id (its train split). Blank lines are dropped."""
    path = Path(source).expanduser()
    if path.is_file() and path.suffix.lower() == ".txt":
        texts = _text_lines(path)
    elif path.is_file():
        texts = read_texts(path, text_columns)
    elif path.is_dir():
        texts = _folder_texts(path, text_columns)
    else:
        texts = _hub_texts(source, text_columns)
    texts = [text.strip() for text in texts if text and not is_blank(text)]
    if not texts:
        raise DataError(f"{source}: expected unlabelled texts, found none; pass a source with texts")
    return texts


def _text_lines(path: Path) -> list[str]:
    """The non-blank lines of a UTF-8 text file (blank lines separate paragraphs in a corpus)."""
    lines = []
    for number, line in enumerate(decode_file(path).splitlines(), start=1):
        problem = text_problem(line)
        if problem is not None:
            raise DataError(f"{path}, line {number}: {problem}")
        if not is_blank(line):
            lines.append(line.strip())
    return lines


def _folder_texts(folder: Path, text_columns: tuple[str, ...] | None) -> list[str]:
    text_files = sorted(folder.glob("*.txt"))
    tables = sorted(p for p in folder.iterdir() if p.suffix.lower() in TABLE_SUFFIXES and p.stem.lower() == "train")
    if tables:  # a split folder as `train` reads it (its classes.txt is not text)
        return read_texts(tables[0], text_columns)
    if text_files:
        return [text for file in text_files for text in _text_lines(file)]
    raise DataError(
        f"{folder}: expected .txt files or a train table (train.csv, .tsv, .jsonl, .parquet), found "
        f"{sorted(p.name for p in folder.iterdir())[:10]}; point --data at the text"
    )


def _hub_texts(dataset_id: str, text_columns: tuple[str, ...] | None) -> list[str]:
    import datasets

    try:
        rows = datasets.load_dataset(dataset_id, split="train")
    except (ConnectionError, TimeoutError, FileNotFoundError, ValueError) as error:
        raise DataError(
            f"{dataset_id}: no local file or folder of that name, and the hub did not give a dataset ({error}); "
            "pass a local .txt file, folder or table"
        ) from error
    columns = text_columns or next(
        (c for c in (("text",), ("title", "description"), ("sentence",)) if set(c) <= set(rows.column_names)), None
    )
    if not columns:
        raise DataError(f"{dataset_id}: expected a text column, found {rows.column_names}; pass --text-column")
    return [" ".join(str(row[c] or "") for c in columns) for row in rows]
