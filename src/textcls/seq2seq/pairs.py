"""Parallel data: reading (source, target) pairs from TSV, CSV or JSONL, tokens and vocabularies.

    TSV     one pair a line, `source<TAB>target`; a first line `source<TAB>target` is a header
    CSV     a header row naming the source and target columns (default `source`, `target`)
    JSONL   one object a line with those two keys

Every bad row is a `DataError` naming the file, the line and the field, what was expected, what was
found and the fix. A folder holds `train.*` and `dev.*` (and `test.*` for `evaluate`); without a dev
file a tenth of train is held out.

Example:
    >>> splits = read_folder(Path("data/dates"))              # doctest: +SKIP
    >>> splits["train"].sources[0], splits["train"].targets[0]  # doctest: +SKIP
    ('Saturday 14 August 1982', '1982-08-14')
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from textcls.data.texts import decode_file, is_blank, text_problem
from textcls.errors import ConfigError, DataError

SUFFIXES = (".tsv", ".csv", ".jsonl")
PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
TOKEN_MODES = ("auto", "words", "chars")


@dataclass(frozen=True)
class Pairs:
    """One split: sources and targets, aligned, and where they came from."""

    sources: list[str]
    targets: list[str]
    origin: str

    def __len__(self) -> int:
        return len(self.sources)


# ---- reading ----------------------------------------------------------------------------------
def write_tsv(path: Path, pairs: Iterable[tuple[str, str]]) -> None:
    """Pairs as headerless `source<TAB>target` lines (the caller writes atomically)."""
    with Path(path).open("w", encoding="utf-8", newline="\n") as handle:
        for source, target in pairs:
            handle.write(f"{source}\t{target}\n")


def read_pairs(path: str | Path, source_column: str = "source", target_column: str = "target") -> Pairs:
    """The pairs of one TSV, CSV or JSONL file; a bad row is a `DataError` naming file, line and field.

    Example:
        >>> read_pairs("data/dates/train.tsv").sources[:1]   # doctest: +SKIP
        ['Tuesday 3rd of March 2009']
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{path}: expected a file of pairs, found {'a folder' if path.is_dir() else 'nothing'}; check the path"
        )
    text = decode_file(path)  # a byte that is not UTF-8 is refused below, naming its line and field
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _csv_rows(path, text, source_column, target_column)
    elif suffix == ".jsonl":
        rows = _jsonl_rows(path, text, source_column, target_column)
    elif suffix == ".tsv":
        rows = _tsv_rows(path, text, source_column, target_column)
    else:
        raise DataError(
            f"{path}: expected a file ending in {', '.join(SUFFIXES)}, found {suffix or 'no suffix'}; "
            "rename or convert it"
        )
    pairs = []
    for line, source, target in rows:
        for field, value in ((source_column, source), (target_column, target)):
            if is_blank(value):
                raise DataError(
                    f"{path}, line {line}, field {field!r}: expected text, found it empty; "
                    "fill it in or remove the line"
                )
            problem = text_problem(value)
            if problem is not None:
                raise DataError(f"{path}, line {line}, field {field!r}: {problem}")
        pairs.append((source.strip(), target.strip()))
    if not pairs:
        raise DataError(f"{path}: expected at least one pair, found none; check the file")
    return Pairs([s for s, _ in pairs], [t for _, t in pairs], str(path))


def _tsv_rows(path: Path, text: str, source_column: str, target_column: str) -> list[tuple[int, str, str]]:
    rows = []
    for line, content in enumerate(text.splitlines(), start=1):
        if is_blank(content):
            continue
        cells = content.split("\t")
        if len(cells) != 2:
            found = "no tab" if len(cells) == 1 else f"{len(cells) - 1} tabs"
            raise DataError(
                f"{path}, line {line}: expected 'source<TAB>target' (exactly one tab), found {found} in "
                f"{content[:60]!r}; put one tab between the source and the target"
            )
        if line == 1 and cells == [source_column, target_column]:
            continue  # a header
        rows.append((line, cells[0], cells[1]))
    return rows


def _csv_rows(path: Path, text: str, source_column: str, target_column: str) -> list[tuple[int, str, str]]:
    reader = csv.reader(text.splitlines())
    header = next(reader, None) or []
    indices = _columns(path, header, source_column, target_column)
    rows = []
    for cells in reader:
        line = reader.line_num
        if all(is_blank(cell) for cell in cells):
            continue
        if len(cells) != len(header):
            raise DataError(
                f"{path}, line {line}: expected {len(header)} fields like the header, found {len(cells)}; "
                "quote fields that contain commas"
            )
        rows.append((line, cells[indices[0]], cells[indices[1]]))
    return rows


def _jsonl_rows(path: Path, text: str, source_column: str, target_column: str) -> list[tuple[int, str, str]]:
    rows = []
    for line, content in enumerate(text.splitlines(), start=1):
        if is_blank(content):
            continue
        try:
            record = json.loads(content)
        except json.JSONDecodeError as error:
            raise DataError(
                f"{path}, line {line}: expected a JSON object, found invalid JSON ({error.msg}); fix the line"
            ) from error
        if not isinstance(record, dict):
            raise DataError(f"{path}, line {line}: expected a JSON object, found {type(record).__name__}; fix the line")
        values = []
        for field in (source_column, target_column):
            if field not in record:
                raise DataError(
                    f"{path}, line {line}, field {field!r}: expected the key, found keys {sorted(record)}; "
                    "pass --source-column/--target-column"
                )
            if not isinstance(record[field], str):
                raise DataError(
                    f"{path}, line {line}, field {field!r}: expected a string, found {type(record[field]).__name__}"
                )
            values.append(record[field])
        rows.append((line, values[0], values[1]))
    return rows


def _columns(path: Path, header: list[str], source_column: str, target_column: str) -> tuple[int, int]:
    missing = [name for name in (source_column, target_column) if name not in header]
    if missing:
        raise DataError(
            f"{path}, line 1: expected columns {source_column!r} and {target_column!r} in the header, found {header}; "
            "pass --source-column/--target-column"
        )
    return header.index(source_column), header.index(target_column)


def split_file(folder: Path, split: str) -> Path | None:
    """`folder/<split>.tsv|csv|jsonl`, or None; two of them at once is an error."""
    found = [folder / f"{split}{suffix}" for suffix in SUFFIXES if (folder / f"{split}{suffix}").is_file()]
    if len(found) > 1:
        raise DataError(f"{folder}: expected one {split} file, found {[p.name for p in found]}; keep one")
    return found[0] if found else None


def read_folder(
    folder: str | Path,
    splits: Sequence[str] = ("train", "dev"),
    source_column: str = "source",
    target_column: str = "target",
    seed: int = 0,
) -> dict[str, Pairs]:
    """The requested splits of a data folder; a missing dev split is a tenth of train, held out with `seed`."""
    folder = Path(folder)
    if not folder.is_dir():
        found = "a file" if folder.exists() else "nothing"
        raise DataError(f"{folder}: expected a folder with train.tsv (or .csv, .jsonl), found {found}")
    files = {split: split_file(folder, split) for split in ("train", *splits)}
    result: dict[str, Pairs] = {}
    for split in splits:
        split_path, train_path = files[split], files["train"]
        if split_path is not None:
            result[split] = read_pairs(split_path, source_column, target_column)
        elif split == "dev" and train_path is not None:
            train, dev = hold_out(read_pairs(train_path, source_column, target_column), 0.1, seed)
            result.update(dev=dev, **({"train": train} if "train" in splits else {}))
        else:
            present = sorted(p.name for p in folder.iterdir() if p.suffix in SUFFIXES)
            raise DataError(
                f"{folder}: expected {split}.tsv, {split}.csv or {split}.jsonl, found {present}; "
                "add it or pass another folder"
            )
    return {split: result[split] for split in splits}


def hold_out(pairs: Pairs, fraction: float, seed: int) -> tuple[Pairs, Pairs]:
    """`pairs` cut into (the rest, a random `fraction`)."""
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    size = max(1, int(len(order) * fraction))
    if size >= len(order):
        raise DataError(
            f"{pairs.origin}: expected at least 2 pairs to hold a dev split out, found {len(order)}; add a dev file"
        )

    def subset(rows: list[int], name: str) -> Pairs:
        return Pairs([pairs.sources[i] for i in rows], [pairs.targets[i] for i in rows], f"{pairs.origin} ({name})")

    return subset(sorted(order[size:]), "train part"), subset(sorted(order[:size]), "held-out dev")


def fingerprint(splits: dict[str, Pairs]) -> str:
    """sha256 over every pair of every split, in order."""
    digest = hashlib.sha256()
    for name, pairs in sorted(splits.items()):
        digest.update(name.encode())
        for source, target in zip(pairs.sources, pairs.targets):
            digest.update(f"{source}\t{target}\n".encode())
    return digest.hexdigest()


# ---- tokens and vocabularies ------------------------------------------------------------------
def resolve_token_mode(mode: str, targets: Sequence[str]) -> str:
    """`auto` reads characters when every target is one word (an ISO date, a number), else words."""
    if mode not in TOKEN_MODES:
        raise ConfigError(f"tokens: expected one of {list(TOKEN_MODES)}, found {mode!r}; pick one of them")
    if mode != "auto":
        return mode
    return "chars" if all(" " not in target for target in targets) else "words"


def tokenize(text: str, mode: str) -> list[str]:
    """Words (split on whitespace) or characters."""
    return list(text) if mode == "chars" else text.split()


def detokenize(tokens: Sequence[str], mode: str) -> str:
    return "".join(tokens) if mode == "chars" else " ".join(tokens)


@dataclass(frozen=True)
class Vocabulary:
    """Token <-> id; ids 0-3 are `<pad>`, `<s>`, `</s>`, `<unk>`."""

    tokens: list[str]

    @classmethod
    def build(cls, texts: Iterable[str], mode: str) -> Vocabulary:
        """Every token of `texts`, most frequent first (ties alphabetical), after the specials."""
        counts = Counter(token for text in texts for token in tokenize(text, mode))
        return cls(SPECIALS + sorted(counts, key=lambda token: (-counts[token], token)))

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str, mode: str, max_length: int | None = None) -> list[int]:
        """Ids of `text`'s tokens then `</s>`, cut to `max_length` tokens in all."""
        index = self._index
        ids = [index.get(token, UNK) for token in tokenize(text, mode)]
        if max_length is not None:
            ids = ids[: max_length - 1]
        return ids + [EOS]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of `ids` up to (not including) the first `</s>`; padding and `<s>` dropped."""
        tokens = []
        for i in ids:
            if i == EOS:
                break
            if i not in (PAD, BOS):
                tokens.append(self.tokens[i])
        return tokens

    @property
    def _index(self) -> dict[str, int]:
        cached = self.__dict__.get("_cached_index")
        if cached is None:
            cached = {token: i for i, token in enumerate(self.tokens)}
            object.__setattr__(self, "_cached_index", cached)
        return cached
