"""Load labelled text splits from a folder, explicit files or a Hugging Face hub dataset.

Every row goes through one validation path whatever its source: a bad row raises a ``DataError``
naming the file, row, line and field, or is skipped and counted under ``skip_bad_rows``. Label
names come from a classes file, the hub's ``ClassLabel`` feature, or the sorted union of labels;
in the last case a dev/test label that train lacks is a bad row unless ``allow_new_labels`` is set.

Example:
    >>> data = load_data(DataConfig(data="data/ag_news"))  # doctest: +SKIP
    >>> data.label_names, len(data.splits["train"])  # doctest: +SKIP
    (['World', 'Sports', 'Business', 'Sci/Tech'], 120000)
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import logging
import math
import random
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from textcls.config import DEFAULT_HUB_DATASET, DataConfig
from textcls.data.texts import decode_file, is_blank, text_problem
from textcls.errors import DataError

logger = logging.getLogger(__name__)

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
SPLIT_STEMS = {"train": ("train",), "dev": ("dev", "validation", "valid", "val"), "test": ("test",)}
HUB_SPLITS = {"train": ("train",), "dev": ("validation", "dev"), "test": ("test",)}
SPLIT_FLAGS = {"train": "--train", "dev": "--dev", "test": "--test"}
AG_NEWS_NAMES = ["World", "Sports", "Business", "Sci/Tech"]
KNOWN_COLUMNS = ("label", "text", "title", "description")
TEXT_COLUMN_CHOICES = (("text",), ("title", "description"), ("sentence",), ("content",))
SKIP_HINT = "Fix the row or pass --skip-bad-rows"
PATH_SUFFIXES = (*TABLE_SUFFIXES, ".txt")
# A hub dataset id: "name" or "owner/name"; anything else that is not on disk is a missing local path.
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
# Label cells that spreadsheets and pandas write for "no value".
MISSING_LABELS = frozenset({"nan", "null", "none"})
# Above this share of dev/test rows repeating a train text, scores overstate how the model does on new text.
OVERLAP_WARN_SHARE = 0.01


# A split's labels: one label index a row, or under --multi-label the sorted tuple of a row's indices.
LabelRows = Sequence[int | tuple[int, ...]]


@dataclass(frozen=True)
class Split:
    """One split: ``labels[i]`` indexes ``LoadedData.label_names``; ``source`` is a path or "hubid:split".

    With ``multi_label``, ``labels[i]`` is the sorted tuple of every label index row i carries (at least one).
    """

    name: str
    texts: list[str]
    labels: LabelRows
    source: str
    multi_label: bool = False
    # `textcls distill`: the teacher's view of every row, which training reads instead of `labels` alone
    soft_targets: SoftTargets | None = None
    # the 1-based data row of each kept row in its source (a header is not a row); None where not tracked
    numbers: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class SoftTargets:
    """A teacher's view of a split's rows, for knowledge distillation: its `logits` (rows, classes) float32
    (log-probabilities serve as well), `labelled` (rows,) bool: which rows' labels are gold (the others'
    are the teacher's own guesses, used for nothing but bookkeeping), and the loss settings `temperature`
    and `alpha` (the hard labels' weight)."""

    logits: np.ndarray  # (rows, classes)
    labelled: np.ndarray  # (rows,) bool
    temperature: float
    alpha: float

    def targets(self, labels: Sequence[Any]) -> np.ndarray:
        """(rows, 1 + classes) float32: column 0 the gold label, -1 where a row has none, then the logits."""
        hard = np.where(self.labelled, np.asarray(labels, dtype=np.int64), -1).astype(np.float32)
        return np.concatenate([hard[:, None], np.asarray(self.logits, dtype=np.float32)], axis=1)


@dataclass(frozen=True)
class LoadedData:
    """The requested splits, their label names, a sha256 over every kept row and the skipped-row count."""

    splits: dict[str, Split]
    label_names: list[str]
    fingerprint: str
    skipped_rows: int
    multi_label: bool = False
    # How integer labels were read: 0 or 1 when they index `label_names` from 0 or 1, None when the labels
    # are names (an integer that is itself a name counts as one). A run records it, see `KnownData`.
    label_base: int | None = None
    # The columns joined into each text (train's, else the first split's): named or found by layout.
    text_columns: tuple[str, ...] | None = None


@dataclass(frozen=True)
class KnownData:
    """What a trained run knows of its data, for reading new data the way its training data was read:
    integer labels index `names` (when the data has no classes file of its own), counting from `base`
    unless the labels themselves show their base (a 0, or the class count N); the text is read from
    `text_columns` where the new data has them and no --text-column is given."""

    names: list[str]
    base: int | None = None
    text_columns: tuple[str, ...] | None = None


@dataclass
class _Record:
    """A parsed row before validation; ``problem`` is set when the row could not be parsed at all."""

    number: int  # 1-based data row within the split
    line: int | None  # physical line where the row starts (text formats only)
    values: dict[str, Any]
    problem: str | None = None
    problem_field: str | None = None


@dataclass
class _Table:
    source: str
    columns: list[str]
    records: list[_Record]
    headerless_ag_news: bool = False


@dataclass
class _Example:
    number: int
    line: int | None
    text: str
    # raw: an integral number or a name, mapped to an index once all splits are read; a tuple of them (in cell
    # order, no repeats) under --multi-label
    label: int | str | tuple[int | str, ...]


class _BadRows:
    """Raises on the first bad row or, when skipping, counts them per source for one final warning."""

    def __init__(self, skip: bool, hint: str = SKIP_HINT) -> None:
        self.skip, self.hint = skip, hint
        self.counts: Counter[str] = Counter()
        self.reasons: list[str] = []

    def report(self, source: str, number: int, line: int | None, field: str | None, reason: str) -> None:
        where = f"{source}, row {number}" + (f" (line {line})" if line is not None else "")
        message = where + (f", field '{field}'" if field is not None else "") + f": {reason}"
        if not self.skip:
            raise DataError(f"{message}. {self.hint}")
        self.counts[source] += 1
        if len(self.reasons) < 3:
            self.reasons.append(message)

    def warn(self) -> None:
        if self.counts:
            per_file = ", ".join(f"{source}: {count}" for source, count in self.counts.items())
            total = sum(self.counts.values())
            logger.warning("skipped %d bad rows (%s); first reasons: %s", total, per_file, "; ".join(self.reasons))


def load_data(
    config: DataConfig,
    splits: tuple[str, ...] = ("train", "dev", "test"),
    require_train: bool = True,
    known: KnownData | None = None,
) -> LoadedData:
    """Read, validate and label-map the requested splits; carve dev from train when there is none.

    `known`: what a trained run knows of its data (labels, text columns), when reading data to score it
    (see `KnownData`).

    Example:
        >>> data = load_data(DataConfig(data="my_folder"), splits=("dev",), require_train=False)  # doctest: +SKIP
        >>> data.splits["dev"].texts[0], data.label_names[data.splits["dev"].labels[0]]  # doctest: +SKIP
        ('Stocks rally on ...', 'Business')
    """
    sources, names = _locate(config)
    if require_train and "train" not in sources:
        raise DataError(
            f"expected a train split, found only {sorted(sources) or 'no splits'}; "
            "pass --train FILE or a --data folder with a train.csv"
        )
    carve = "dev" in splits and "dev" not in sources and "train" in sources
    needed = {split for split in splits if split in sources} | ({"train"} if carve else set())
    if not needed:
        found = sorted(sources) or "none"
        raise DataError(f"expected one of the splits {list(splits)}, found {found}; pass --dev or --test FILE")
    if names is None:
        # Without a names list the label set is the union over every split, so train and evaluate agree on it.
        needed = set(sources)

    bad = _BadRows(config.skip_bad_rows)
    examples, source_names, headerless, text_columns = _read_examples(sources, needed, config, bad, known)
    if names is None and "train" in examples:
        # A training run takes its label list from every split it reads, so then all of them must agree with train.
        strict = set(examples) if "train" in splits else set(splits)
        _check_new_labels(examples, source_names, strict, config, bad)
    label_map = _build_label_map(examples, names, headerless, config.label_base, known)
    loaded = _map_labels(examples, source_names, label_map, config, bad)
    bad.warn()
    if "train" in splits and "train" in loaded:
        _require_two_classes(loaded["train"], label_map.names, "add rows of another class")

    if carve:
        loaded["train"], loaded["dev"] = _carve_dev(loaded["train"], config.dev_fraction, config.seed)
    _warn_overlap(loaded, splits)
    result = {}
    for split in SPLIT_STEMS:
        if split in splits and split in loaded:
            limit = config.max_train_samples if split == "train" else config.max_eval_samples
            result[split] = _sample(loaded[split], limit, config.seed)
    if "train" in result:
        fix = "the dev carve or --max-train-samples left one; raise --max-train-samples or pass --dev FILE"
        _require_two_classes(result["train"], label_map.names, fix)
    multi_label = config.multi_label
    return LoadedData(
        result,
        label_map.names,
        _fingerprint(result),
        sum(bad.counts.values()),
        multi_label,
        label_map.base,
        text_columns.get("train") or next(iter(text_columns.values()), None),
    )


def _read_examples(
    sources: dict[str, _Reader], needed: set[str], config: DataConfig, bad: _BadRows, known: KnownData | None = None
) -> tuple[dict[str, list[_Example]], dict[str, str], bool, dict[str, tuple[str, ...]]]:
    """Each needed split's valid rows with raw labels, its source name, whether a file is headerless AG News,
    and each split's text columns."""
    max_text_chars = config.max_text_chars
    examples: dict[str, list[_Example]] = {}
    source_names: dict[str, str] = {}
    columns: dict[str, tuple[str, ...]] = {}
    headerless = False
    for split in SPLIT_STEMS:
        if split in needed:
            table = sources[split]()
            if config.label_column not in table.columns:
                raise DataError(
                    f"expected a label column '{config.label_column}' in {table.source}, found {table.columns}; "
                    "pass --label-column NAME"
                )
            text_columns = columns[split] = resolve_text_columns(
                table.columns, config.text_columns, table.source, known.text_columns if known else None
            )
            examples[split] = _examples(
                table, text_columns, config.label_column, bad, max_text_chars, _label_reader(config)
            )
            source_names[split] = table.source
            headerless = headerless or table.headerless_ag_news
    return examples, source_names, headerless, columns


def _map_labels(
    examples: dict[str, list[_Example]],
    source_names: dict[str, str],
    label_map: _LabelMap,
    config: DataConfig,
    bad: _BadRows,
) -> dict[str, Split]:
    """Splits with label indices (a sorted tuple of them per row under --multi-label); a row with a label
    the map lacks goes to ``bad``."""
    multi_label = config.multi_label
    loaded: dict[str, Split] = {}
    for split, rows in examples.items():
        source, texts, numbers = source_names[split], [], []
        single: list[int] = []  # one label index a row
        sets: list[tuple[int, ...]] = []  # or, under --multi-label, the sorted indices a row carries
        for example in rows:
            raw = _label_tuple(example.label)
            indices = [label_map.index(label) for label in raw]
            known = [index for index in indices if index is not None]
            if len(known) < len(indices):
                unknown = raw[indices.index(None)]
                reason = label_map.unknown(unknown)
                if multi_label:
                    reason += f" (in the multi-label cell {config.label_separator.join(map(str, raw))!r})"
                elif isinstance(unknown, str) and any(mark in unknown for mark in ("|", ";")):
                    reason += "; a cell of several labels needs --multi-label (and --label-separator)"
                bad.report(source, example.number, example.line, config.label_column, reason)
                continue
            texts.append(example.text)
            numbers.append(example.number)
            if multi_label:
                sets.append(tuple(sorted(set(known))))
            else:
                single.append(known[0])
        if not texts:
            skipped = bad.counts[source]
            raise DataError(f"{source}: expected at least one usable row, found none ({skipped} skipped); fix the file")
        labels = sets if multi_label else single
        loaded[split] = Split(split, texts, labels, source, multi_label, numbers=tuple(numbers))
    return loaded


def _label_tuple(label: int | str | tuple[int | str, ...]) -> tuple[int | str, ...]:
    """A raw label as a tuple of names or numbers (one, unless the row is multi-label)."""
    return label if isinstance(label, tuple) else (label,)


def row_labels(row: int | tuple[int, ...]) -> tuple[int, ...]:
    """A split row's label indices: its tuple under --multi-label, else its one index as a tuple."""
    return row if isinstance(row, tuple) else (row,)


def flat_labels(labels: Iterable[int | tuple[int, ...]]) -> list[int]:
    """Every label index of `labels`, a multi-label row's several counted once each.

    Example:
        >>> flat_labels([(0, 2), (1,)]), flat_labels([3, 1])
        ([0, 2, 1], [3, 1])
    """
    return [label for row in labels for label in row_labels(row)]


def read_texts(
    path: str | Path, text_columns: tuple[str, ...] | None = None, preferred: Sequence[str] | None = None
) -> list[str]:
    """Texts to predict, in input order: one per line of a .txt, or the text columns of a table
    (`text_columns`, else `preferred` where the table has them: the columns a run was trained on).

    Example:
        >>> read_texts("news.txt")  # doctest: +SKIP
        ['Stocks rally on strong earnings', 'Team wins the cup']
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"expected an input file, found nothing at {path}; check the path")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        texts = _read_lines(path)
    elif suffix in TABLE_SUFFIXES:
        table = _read_table(path, "label", {*KNOWN_COLUMNS, *(text_columns or ()), *(preferred or ())})
        columns = resolve_text_columns(table.columns, text_columns, table.source, preferred)
        bad = _BadRows(skip=False, hint="Fix the row: every input row needs a text")
        texts = [example.text for example in _examples(table, columns, None, bad, label_reader=_raw_label)]
    else:
        raise DataError(
            f"{path}: expected one of {['.txt', *TABLE_SUFFIXES]}, found {suffix or 'no extension'!r}; "
            "convert the file or rename it with the right extension"
        )
    if not texts:
        raise DataError(f"{path}: expected at least one text, found an empty file; add texts to predict")
    return texts


def resolve_text_columns(
    columns: list[str], text_columns: tuple[str, ...] | None, source: str, preferred: Sequence[str] | None = None
) -> tuple[str, ...]:
    """The columns joined to form each text: ``text_columns`` if given, else ``preferred`` (a run's own
    columns, when reading data for it) where all are there, else the first usual layout found.

    Example:
        >>> resolve_text_columns(["label", "title", "description"], None, "train.csv")
        ('title', 'description')
        >>> resolve_text_columns(["text", "title", "description"], None, "new.csv", preferred=["title", "description"])
        ('title', 'description')
    """
    if text_columns:
        for column in text_columns:
            if column not in columns:
                raise DataError(f"expected column '{column}' in {source}, found {columns}; pass --text-column NAME")
        return tuple(text_columns)
    if preferred and all(column in columns for column in preferred):
        return tuple(preferred)
    for choice in TEXT_COLUMN_CHOICES:
        if all(column in columns for column in choice):
            if preferred:
                logger.warning(
                    "%s has no %s, the text the model was trained on; reading %s instead "
                    "(pass --text-column to choose)",
                    source,
                    "+".join(preferred),
                    "+".join(choice),
                )
            return choice
    raise DataError(
        f"expected a text column ('text', 'title'+'description', 'sentence' or 'content') in {source}, "
        f"found {columns}; pass --text-column NAME"
    )


_Reader = Callable[[], _Table]


def _locate(config: DataConfig) -> tuple[dict[str, _Reader], list[str] | None]:
    """Where each split comes from, and the label names if a classes file or ClassLabel gives them."""
    sources: dict[str, _Reader] = {}
    names: list[str] | None = None
    classes_file: Path | None = None
    explicit = {"train": config.train_file, "dev": config.dev_file, "test": config.test_file}
    known_columns = {config.label_column, *(config.text_columns or ()), *KNOWN_COLUMNS}

    def reader(path: Path) -> _Reader:
        return functools.partial(_read_table, path, config.label_column, known_columns)

    if config.data is not None:
        path = Path(config.data).expanduser()
        if path.is_dir():
            sources = {split: reader(file) for split, file in _split_files(path).items()}
            classes_file = path / "classes.txt"
        elif path.is_file():
            sources["train"] = reader(path)
            classes_file = path.parent / "classes.txt"
        elif _looks_like_path(config.data):
            raise DataError(
                f"no such file or folder: {config.data} (resolved to {path.resolve()}); expected a file or folder "
                "for --data, found nothing at that path; check the path"
            )
        else:
            sources, names = _load_hub(config.data, config.label_column, local_name=config.data)
    elif not any(explicit.values()):
        sources, names = _load_hub(DEFAULT_HUB_DATASET, config.label_column)
    for split, file in explicit.items():
        if file is not None:
            path = Path(file).expanduser()
            if not path.is_file():
                raise DataError(
                    f"expected a file for {SPLIT_FLAGS[split]}, found nothing at {file} "
                    f"(resolved to {path.resolve()}); check the path"
                )
            sources[split] = reader(path)
    if config.train_file is not None:
        classes_file = Path(config.train_file).expanduser().parent / "classes.txt"
    if config.label_names_file is not None:
        names = _read_label_names(Path(config.label_names_file).expanduser())
    elif classes_file is not None and classes_file.is_file():
        names = _read_label_names(classes_file)
    return sources, names


def _looks_like_path(value: str) -> bool:
    """Whether a --data value that is not on disk names a local path rather than a hub id like owner/name.

    Example:
        >>> _looks_like_path("data/train.csv"), _looks_like_path("./news"), _looks_like_path("data/crlf")
        (True, True, False)
    """
    return (
        value.startswith((".", "/", "~"))
        or "\\" in value
        or value.count("/") > 1
        or value.lower().endswith(PATH_SUFFIXES)
        or HUB_ID.fullmatch(value) is None
    )


def _split_files(folder: Path) -> dict[str, Path]:
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in TABLE_SUFFIXES:
            for split, stems in SPLIT_STEMS.items():
                if path.stem.lower() in stems:
                    found.setdefault(split, []).append(path)
    for split, paths in found.items():
        if len(paths) > 1:
            raise DataError(
                f"{folder}: expected one {split} file, found {[p.name for p in paths]}; "
                f"keep one or pass {SPLIT_FLAGS[split]} FILE"
            )
    if "train" not in found and "dev" not in found and "test" not in found:
        raise DataError(
            f"{folder}: expected split files such as train.csv, dev.csv, test.csv (also .tsv .jsonl .json .parquet), "
            f"found {sorted(p.name for p in folder.iterdir())}; rename them or pass --train/--dev/--test"
        )
    return {split: paths[0] for split, paths in found.items()}


def _read_label_names(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"expected a label names file at {path}, found none; pass --label-names-file FILE")
    lines = decode_file(path).splitlines()
    while lines and is_blank(lines[-1]):
        lines.pop()  # blank lines after the last name shift no index
    names = []
    for line, content in enumerate(lines, 1):
        if is_blank(content):
            raise DataError(
                f"{path}, line {line}: expected one label name per line, found a blank line; integer labels "
                "index the names by line, so remove the line or write the missing name on it"
            )
        problem = text_problem(content)
        if problem is not None:
            raise DataError(f"{path}, line {line}: {problem}")
        names.append(content.strip())
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if not names or duplicates:
        found = f"duplicates {duplicates}" if duplicates else "no names"
        raise DataError(f"{path}: expected one distinct label name per line, found {found}; fix the file")
    return names


def _load_hub(
    dataset_id: str, label_column: str, local_name: str | None = None
) -> tuple[dict[str, _Reader], list[str] | None]:
    """The hub dataset's splits and ClassLabel names; ``local_name``: the --data value, not found on disk."""
    import datasets  # heavy; only the hub path needs it

    local = ""
    if local_name is not None:
        resolved = Path(local_name).expanduser().resolve()
        local = f"; no local file or folder named {local_name} exists either (resolved to {resolved})"
    try:
        loaded = datasets.load_dataset(dataset_id)
    except (ConnectionError, TimeoutError) as error:
        raise DataError(
            f"could not reach the Hugging Face hub for dataset {dataset_id} ({error}){local}; to work offline pass "
            "a local folder (--data DIR) or files (--train/--dev/--test), or set HF_HUB_OFFLINE=1 with the dataset "
            "already in the cache"
        ) from error
    except FileNotFoundError as error:
        raise DataError(
            f"expected a local file or folder or a Hugging Face hub dataset id, found {dataset_id!r}, which is "
            f"not on the hub ({error}){local}; check the path or dataset name"
        ) from error
    sources: dict[str, _Reader] = {}
    names: list[str] | None = None
    for split, candidates in HUB_SPLITS.items():
        hub_split = next((name for name in candidates if name in loaded), None)
        if hub_split is not None:
            dataset = loaded[hub_split]
            sources[split] = functools.partial(_hub_table, dataset, f"{dataset_id}:{hub_split}")
            feature = dataset.features.get(label_column)
            if names is None and isinstance(feature, datasets.ClassLabel):
                names = list(feature.names)
    return sources, names


def _read_table(path: Path, label_column: str, known_columns: set[str]) -> _Table:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return _read_delimited(path, label_column, known_columns)
    if suffix in (".jsonl", ".json"):
        return _read_jsonl(path)
    if suffix == ".parquet":
        return _read_parquet(path)
    raise DataError(f"{path}: expected one of {list(TABLE_SUFFIXES)}, found {suffix!r}; convert the file")


@functools.cache
def _lift_csv_field_limit() -> None:
    """Let one CSV field be as long as the platform allows; --max-text-chars is the cap users see."""
    try:
        csv.field_size_limit(sys.maxsize)
    except OverflowError:  # a C long is 32 bits on Windows
        csv.field_size_limit(2**31 - 1)


def _read_delimited(path: Path, label_column: str, known_columns: set[str]) -> _Table:
    _lift_csv_field_limit()
    tsv = path.suffix.lower() == ".tsv"
    delimiter = "\t" if tsv else ","
    # TSV files (GLUE and others) do not quote fields: a '"' in a sentence must not swallow the next lines.
    # In a CSV, strict parsing refuses text after a closing quote ("a"b) and a quote left open at the end.
    reader = csv.reader(
        io.StringIO(decode_file(path), newline=""),
        delimiter=delimiter,
        quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL,
        strict=not tsv,
    )
    rows: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for fields in reader:
            if fields:  # blank lines carry no row
                rows.append((start, fields))
            start = reader.line_num + 1
    except csv.Error as error:
        # an open quote swallows the lines after it: name the line where the row began, not where reading stopped
        raise DataError(
            f"{path}, line {start}: cannot parse the row that starts there "
            f"({error}; read on to line {reader.line_num}); "
            "fix the quoting there"
        ) from None
    if not rows:
        raise DataError(f"{path}: expected a header and rows, found an empty file; add data or remove the file")
    first = [field.strip() for field in rows[0][1]]
    # The original AG News CSVs have no header: "3","title","description" with 1-based class indices.
    headerless = len(first) == 3 and _as_int(first[0]) is not None and not known_columns.intersection(first)
    columns = [label_column, "title", "description"] if headerless else first
    repeated = sorted(name for name, count in Counter(columns).items() if count > 1)
    if repeated:
        raise DataError(
            f"{path}, line 1: expected distinct column names in the header, found {repeated} more than once; "
            "rename the repeated columns"
        )
    data_rows = rows if headerless else rows[1:]
    records = []
    for number, (line, fields) in enumerate(data_rows, 1):
        record = _Record(number, line, dict(zip(columns, fields)))
        if len(fields) < len(columns):
            record.problem_field = columns[len(fields)]
            record.problem = (
                f"missing field: expected {len(columns)} fields as in the header, found {len(fields)} "
                f"(a stray {'tab' if tsv else 'line break'} or a missing quote?)"
            )
        elif len(fields) > len(columns):
            extra = "TSV fields cannot hold a tab" if tsv else "quote a field that holds a ','"
            record.problem = f"expected {len(columns)} fields as in the header, found {len(fields)}; {extra}"
        records.append(record)
    return _Table(str(path), columns, records, headerless)


def _read_jsonl(path: Path) -> _Table:
    text = decode_file(path)
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        return _read_json_array(path, text)
    records: list[_Record] = []
    columns: dict[str, None] = {}  # keys in order of first appearance
    for line, content in enumerate(text.split("\n"), 1):
        if not content.strip():
            continue
        number = len(records) + 1
        try:
            values = json.loads(content)
        except json.JSONDecodeError as error:
            records.append(_Record(number, line, {}, f"invalid JSON ({error.msg} at column {error.colno})"))
            continue
        except (ValueError, RecursionError) as error:  # a number past int's digit limit; nesting past the stack
            records.append(_Record(number, line, {}, f"invalid JSON ({error})"))
            continue
        if not isinstance(values, dict):
            records.append(_Record(number, line, {}, f"expected a JSON object, found {type(values).__name__}"))
            continue
        columns.update(dict.fromkeys(values))
        records.append(_Record(number, line, values))
    return _Table(str(path), list(columns), records)


def _read_json_array(path: Path, text: str) -> _Table:
    """A .json file holding one array of row objects (pandas' `to_json(orient="records")`); rows are its items."""
    try:
        items = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(
            f"{path}, line {error.lineno}: expected a JSON array of row objects, found invalid JSON ({error.msg} at "
            f"column {error.colno}); fix the file, or write one object per line (JSON Lines)"
        ) from None
    except (ValueError, RecursionError) as error:
        raise DataError(
            f"{path}: expected a JSON array of row objects, found invalid JSON ({error}); fix the file"
        ) from None
    records: list[_Record] = []
    columns: dict[str, None] = {}
    for number, values in enumerate(items, 1):
        if isinstance(values, dict):
            columns.update(dict.fromkeys(values))
            records.append(_Record(number, None, values))
        else:
            records.append(_Record(number, None, {}, f"expected a JSON object, found {type(values).__name__}"))
    return _Table(str(path), list(columns), records)


def _read_parquet(path: Path) -> _Table:
    import pyarrow
    import pyarrow.parquet

    try:
        table = pyarrow.parquet.read_table(path)
    except (OSError, pyarrow.ArrowException) as error:
        raise DataError(f"{path}: expected a Parquet file, found an unreadable one ({error}); re-export it") from None
    columns: dict[str, list[Any]] = {}
    for name in table.column_names:
        try:
            columns[name] = table.column(name).to_pylist()
        except UnicodeDecodeError:  # pyarrow decodes strings as it converts: keep the bytes that are not UTF-8
            columns[name] = [
                _surrogate_escaped(scalar) for scalar in table.column(name)
            ]  # as decode_file does for text files
    return _columnar_table(str(path), table.column_names, columns, table.num_rows)


def _surrogate_escaped(scalar: Any) -> Any:
    try:
        return scalar.as_py()
    except UnicodeDecodeError:  # a row error if a text or label column holds it (`_examples`)
        return scalar.as_buffer().to_pybytes().decode("utf-8", "surrogateescape")


def _hub_table(dataset: Any, source: str) -> _Table:
    return _columnar_table(source, list(dataset.column_names), dataset.to_dict(), dataset.num_rows)


def _columnar_table(source: str, columns: list[str], data: dict[str, list[Any]], num_rows: int) -> _Table:
    records = [_Record(row + 1, None, {column: data[column][row] for column in columns}) for row in range(num_rows)]
    return _Table(source, columns, records)


def _read_lines(path: Path) -> list[str]:
    lines = decode_file(path).split("\n")
    while lines and is_blank(lines[-1]):
        lines.pop()  # blank lines at the end follow the last text; they hold no text to predict
    texts = []
    for line, content in enumerate(lines, 1):
        text = content.strip()
        if is_blank(text):
            raise DataError(
                f"{path}, line {line}: expected a text on every line (one prediction each), found a blank; "
                "remove the line"
            )
        problem = text_problem(text)
        if problem is not None:
            raise DataError(f"{path}, line {line}: {problem}")
        texts.append(text)
    return texts


# Reads one raw label cell: the label (a tuple of them under --multi-label), None when the cell is empty, or
# a string saying what is wrong with it.
_LabelReader = Callable[[Any], "int | str | tuple[int | str, ...] | None | _Problem"]


class _Problem(str):
    """What is wrong with a label cell, as `_LabelReader` returns it."""


def _label_reader(config: DataConfig) -> _LabelReader:
    if config.multi_label:
        return functools.partial(_raw_label_set, separator=config.label_separator)
    return _raw_label


def _raw_label_set(value: Any, separator: str) -> tuple[int | str, ...] | None | _Problem:
    """A multi-label cell as a tuple of raw labels in cell order, repeats dropped: names split at
    `separator`, or a JSON list (JSONL); None when the cell is empty.

    Example:
        >>> _raw_label_set("World| Sports", "|"), _raw_label_set(["World", 2], "|"), _raw_label_set("", "|")
        (('World', 'Sports'), ('World', 2), None)
    """
    if isinstance(value, list):
        items: list[Any] = value
        shown = json.dumps(value, ensure_ascii=False)[:80]
    else:
        cell = _cell(value)
        if isinstance(value, str) and separator in cell:
            items = cell.split(separator)
        elif _raw_label(value) is None:
            return None
        else:
            items = [value]
        shown = cell
    if not items:
        return None
    labels: list[int | str] = []
    for position, item in enumerate(items, 1):
        if isinstance(item, bool) or (item is not None and not isinstance(item, (str, int, float))):
            return _Problem(
                f"expected label names or indices in the list, found {_describe(item)} at position {position}"
            )
        label = _raw_label(item)
        if label is None:
            return _Problem(
                f"empty label name at position {position} of the multi-label cell {shown!r}; write names separated "
                f"by {separator!r} (--label-separator) with none left empty"
            )
        if label not in labels:
            labels.append(label)
    return tuple(labels)


def _examples(
    table: _Table,
    text_columns: tuple[str, ...],
    label_column: str | None,
    bad: _BadRows,
    max_text_chars: int | None = None,
    label_reader: _LabelReader | None = None,
) -> list[_Example]:
    """The table's valid rows (text and raw label); bad ones go to ``bad``. No label column: label is ''.

    `label_reader` reads a label cell (default: one label; `_raw_label_set` for --multi-label)."""
    label_reader = label_reader or _raw_label
    lists_allowed = label_reader is not _raw_label  # a JSON list is a multi-label cell
    used = (*text_columns, label_column) if label_column is not None else text_columns
    examples = []
    for record in table.records:
        report = functools.partial(bad.report, table.source, record.number, record.line)
        if record.problem is not None:
            report(record.problem_field, record.problem)
            continue
        problem = next((column for column in used if column not in record.values), None)
        if problem is not None:
            report(problem, "missing field (the row has fewer fields than the header)")
            continue
        unreadable = next(((column, why) for column in used if (why := _text_problem(record.values[column]))), None)
        if unreadable is not None:
            report(*unreadable)
            continue
        problem = next(
            (
                column
                for column in used
                if _not_scalar(record.values[column], column in text_columns)
                and not (lists_allowed and column == label_column and isinstance(record.values[column], list))
            ),
            None,
        )
        if problem is not None:
            value = record.values[problem]
            expected = "a string" if problem in text_columns else "a string or a number"
            report(problem, f"expected {expected}, found {_describe(value)}; write the field as {expected}")
            continue
        text = " ".join(cell for cell in (_cell(record.values[column]) for column in text_columns) if cell)
        if is_blank(text):
            report("+".join(text_columns), "empty text")
            continue
        if max_text_chars is not None and len(text) > max_text_chars:
            report(
                "+".join(text_columns),
                f"expected a text of at most {max_text_chars:,} characters, found {len(text):,}; "
                "shorten it or raise --max-text-chars",
            )
            continue
        cell = record.values[label_column] if label_column is not None else None
        label = label_reader(cell) if label_column is not None else ""
        if isinstance(label, _Problem):
            report(label_column, str(label))
            continue
        if label is None:
            shown = _cell(cell)
            found = f"{shown!r}, which means no value" if shown else "nothing"
            report(label_column, f"empty label: expected a class name or index, found {found}")
            continue
        examples.append(_Example(record.number, record.line, text, label))
    return examples


def _text_problem(value: Any) -> str | None:
    """Why a cell's string is not text (`text_problem`), else None; a multi-label list is checked item by item."""
    if isinstance(value, list):
        return next(filter(None, map(_text_problem, value)), None)
    return text_problem(value) if isinstance(value, str) else None


def _not_scalar(value: Any, is_text: bool) -> bool:
    """True for values whose ``str()`` is not the user's text or label: objects, lists, bytes; booleans as text."""
    if isinstance(value, bool):
        return is_text
    return value is not None and not isinstance(value, (str, int, float))


def _describe(value: Any) -> str:
    kind = {dict: "an object", list: "a list", bool: "a boolean"}.get(type(value), f"a {type(value).__name__}")
    shown = repr(value)
    return f"{kind} ({shown[:40]}{'...' if len(shown) > 40 else ''})"


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _raw_label(value: Any) -> int | str | None:
    """An integral label as int ("3", "3.0" and 3.0 included), else the stripped name; None when missing.

    Example:
        >>> _raw_label(" 3.0"), _raw_label("Sports"), _raw_label("NaN"), _raw_label("")
        (3, 'Sports', None, None)
    """
    number = _as_int(value)
    if number is not None:
        return number
    name = _cell(value)
    return None if not name or name.lower() in MISSING_LABELS else name


def _as_int(value: Any) -> int | None:
    if isinstance(value, str):
        try:
            value = float(value)  # accepts " 3", "3.0"; class indices are far below float's exact range
        except ValueError:
            return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer():
        return int(value)
    return None


class _LabelMap:
    """Maps raw labels to indices into ``names``; ``base`` is None when integers are names themselves."""

    def __init__(self, names: list[str], base: int | None) -> None:
        self.names, self.base = names, base
        self.exact = {name: index for index, name in enumerate(names)}
        self.folded: dict[str, int] = {}
        for index, name in enumerate(names):
            self.folded.setdefault(name.lower(), index)

    def index(self, label: int | str) -> int | None:
        if isinstance(label, int) and self.base is not None:
            position = label - self.base
            return position if 0 <= position < len(self.names) else None
        key = str(label)
        return self.exact.get(key, self.folded.get(key.lower()))

    def unknown(self, label: int | str) -> str:
        indices = f" (or an index {self.base}..{self.base + len(self.names) - 1})" if self.base is not None else ""
        hint = did_you_mean(label, self.names)
        return f"unknown label {label!r}{hint}; expected one of {_shown(self.names)}{indices}"


def _shown(names: list[str]) -> list[str]:
    return names if len(names) <= 20 else [*names[:20], "..."]


def did_you_mean(label: int | str, known: Iterable[int | str]) -> str:
    """ " (did you mean 'Sports'?)" when a known name differs from ``label`` only by case, spacing or one edit.

    One edit counts only between names of 4+ characters: "A" is one edit from any other letter.

    Example:
        >>> did_you_mean("Sprots", ["World", "Sports"]), did_you_mean("sci / tech", ["Sci/Tech"])
        (" (did you mean 'Sports'?)", " (did you mean 'Sci/Tech'?)")
    """
    if not isinstance(label, str):
        return ""
    folded = _fold(label)

    def close(name: int | str) -> bool:
        if not isinstance(name, str) or name == label:
            return False
        other = _fold(name)
        return other == folded or (min(len(other), len(folded)) >= 4 and _one_edit(folded, other))

    candidates = sorted(name for name in known if isinstance(name, str) and close(name))
    candidates.sort(key=lambda name: _fold(name) != folded)  # case or spacing first, then one edit
    return f" (did you mean {candidates[0]!r}?)" if candidates else ""


def _fold(name: str) -> str:
    return "".join(name.casefold().split())


def _one_edit(a: str, b: str) -> bool:
    """Whether ``a`` becomes ``b`` by at most one insertion, deletion, substitution or swap of neighbours."""
    if a == b:
        return True
    if len(a) == len(b):
        diffs = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diffs) == 2:
            first, second = diffs
            return second == first + 1 and (a[first], a[second]) == (b[second], b[first])
        return len(diffs) == 1
    shorter, longer = sorted((a, b), key=len)
    if len(longer) - len(shorter) != 1:
        return False
    return any(longer[:i] + longer[i + 1 :] == shorter for i in range(len(longer)))


def _check_new_labels(
    examples: dict[str, list[_Example]], sources: dict[str, str], strict: set[str], config: DataConfig, bad: _BadRows
) -> None:
    """Without a classes file, a label train lacks is a bad row in a ``strict`` split, else a warning.

    ``allow_new_labels`` turns the bad rows into one warning per split; a skipped row is dropped from ``examples``.
    """
    allow = config.allow_new_labels
    known = {label for example in examples["train"] for label in _label_tuple(example.label)}
    known_names = [str(label) for label in sorted(known, key=lambda label: (isinstance(label, str), label))]

    def new_label(example: _Example) -> int | str | None:
        return next((label for label in _label_tuple(example.label) if label not in known), None)

    for split, rows in examples.items():
        new = [example for example in rows if new_label(example) is not None]
        if split == "train" or not new:
            continue
        if allow or split not in strict:
            labels = sorted({str(new_label(example)) for example in new})
            then = (
                "accepted as --allow-new-labels is set; the model has no training rows for them"
                if allow
                else "they join the label list; fix the rows or pass --allow-new-labels"
            )
            logger.warning(
                "%s: %d rows carry labels that train lacks, %s (first at row %d); %s",
                sources[split],
                len(new),
                labels,
                new[0].number,
                then,
            )
            continue
        for example in new:
            label = new_label(example)
            hint = did_you_mean(label, known) if label is not None else ""
            reason = (
                f"expected a label that train has (one of {_shown(known_names)}), found {label!r}"
                f"{hint}; fix the label, or pass --allow-new-labels to accept it "
                "with a warning"
            )
            bad.report(sources[split], example.number, example.line, config.label_column, reason)
        examples[split] = [example for example in rows if new_label(example) is None]


def _build_label_map(
    examples: dict[str, list[_Example]],
    names: list[str] | None,
    headerless: bool,
    base: int | None,
    known: KnownData | None,
) -> _LabelMap:
    labels = [label for rows in examples.values() for example in rows for label in _label_tuple(example.label)]
    integers = {label for label in labels if isinstance(label, int)}
    if names is None and headerless:
        count = max(integers, default=0)
        if count > max(len(labels), 1000):  # not class indices: naming 1..count would not even fit in memory
            raise DataError(
                f"expected 1-based class indices 1..N in a headerless file, found {count} among {len(labels)} rows; "
                "add a header row (label,title,description) or a classes.txt"
            )
        names = AG_NEWS_NAMES if count == 4 else [str(k) for k in range(1, count + 1)]
        logger.info("headerless AG News layout without a classes file: assuming label names %s", names)
    if names is None and known is not None and integers:
        names = known.names  # integer labels index the run's label names, as its training data's did
    if names is not None:
        if base is None:
            base = _label_base(integers, names, headerless, known.base if known is not None else None)
        return _LabelMap(list(names), base)
    strings = {label for label in labels if isinstance(label, str)}
    if integers and strings:
        raise DataError(
            f"expected labels that are all integers or all names, found integers (e.g. {min(integers)}) and names "
            f"(e.g. {min(strings)!r}); fix the labels, or pass --label-names-file FILE so integers index into it"
        )
    if integers:
        return _LabelMap([str(value) for value in sorted(integers)], None)
    _warn_case_variants(Counter(label for label in labels if isinstance(label, str)))
    return _LabelMap(sorted(strings), None)


def _warn_case_variants(counts: Counter[str]) -> None:
    """Warn about labels that differ only in case: each becomes a class of its own, which is rarely meant."""
    spellings: dict[str, list[str]] = {}
    for label in sorted(counts):
        spellings.setdefault(label.casefold(), []).append(label)
    for variants in spellings.values():
        if len(variants) > 1:
            shown = ", ".join(f"{label!r} ({counts[label]} rows)" for label in variants)
            logger.warning(
                "labels %s differ only in case and are separate classes; write them the same way to merge them, "
                "or pass --label-names-file FILE (names there match labels whatever their case)",
                shown,
            )


def _label_base(integers: set[int], names: list[str], headerless: bool, trained: int | None) -> int | None:
    """How integer labels index `names`: None (by name), 0 or 1, from what the labels show, else as `trained`.

    Example:
        >>> names = ["World", "Sports", "Business", "Sci/Tech"]
        >>> _label_base({0, 1, 2, 3}, names, False, None), _label_base({1, 2, 3, 4}, names, False, None)
        (0, 1)
        >>> _label_base({1, 2}, names, False, 1), _label_base({1, 2}, ["1", "2", "3", "4", "5"], False, 0)
        (1, None)
    """
    if headerless:
        return 1  # the original AG News files number classes 1..N
    if integers and all(str(label) in names for label in integers):
        return None  # star ratings "1".."5" in classes.txt: label 4 is the class named "4", whatever is missing
    if 0 in integers:
        return 0
    if integers and max(integers) == len(names):
        return 1  # 0-based data never has a label equal to N
    if trained is not None:
        return trained  # labels within 1..N-1 do not show their base: read them as the run's training data was
    if integers and max(integers) < len(names):  # (larger ones are unknown labels, reported row by row)
        low = min(integers)
        logger.warning(
            "integer labels %d..%d with %d label names show no base (no 0 and no %d): reading them as 0-based, "
            "label %d as %r; pass --label-base 1 if they count from 1",
            low,
            max(integers),
            len(names),
            len(names),
            low,
            names[low],
        )
    return 0


def _require_two_classes(train: Split, label_names: list[str], fix: str) -> None:
    """Every family needs two classes to tell apart; name the one found rather than its index."""
    present = sorted(set(flat_labels(train.labels)))
    if len(present) < 2:
        found = ", ".join(repr(label_names[label]) for label in present)
        raise DataError(f"{train.source}: expected at least 2 classes in train, found only {found}; {fix}")


def _warn_overlap(splits: dict[str, Split], requested: tuple[str, ...]) -> None:
    """Warn when more than 1% of a requested dev/test split repeats a train text (compared case- and space-folded)."""
    if "train" not in splits:
        return
    seen = {_normalise(text) for text in splits["train"].texts}
    for name, split in splits.items():
        if name == "train" or name not in requested or not len(split):
            continue
        count = sum(_normalise(text) in seen for text in split.texts)
        if count / len(split) > OVERLAP_WARN_SHARE:
            logger.warning(
                "%d of %d %s rows (%.1f%%) repeat a train text (%s); their scores overstate how the model does on "
                "new text: drop the repeats from one of the splits",
                count,
                len(split),
                name,
                100 * count / len(split),
                split.source,
            )


def _normalise(text: str) -> str:
    return " ".join(text.casefold().split())


def _carve_dev(train: Split, dev_fraction: float, seed: int) -> tuple[Split, Split]:
    from sklearn.model_selection import train_test_split

    if len(train) < 2:
        raise DataError(f"{train.source}: expected 2+ rows to carve a dev split, found {len(train)}; pass --dev FILE")

    def split(stratify: Sequence[Any] | None) -> tuple[list[int], list[int]]:
        kept, held = train_test_split(range(len(train)), test_size=dev_fraction, random_state=seed, stratify=stratify)
        return sorted(kept), sorted(held)  # keep the file's order within each part

    try:
        if min(Counter(train.labels).values()) < 2:
            raise ValueError("a class (or a multi-label set of classes) has fewer than 2 rows")
        # a multi-label row is stratified by its whole set of labels
        kept, held = split([str(label) for label in train.labels] if train.multi_label else train.labels)
    except ValueError as error:  # also sklearn's: fewer dev rows than classes
        logger.warning("dev split carved from %s without stratification: %s", train.source, error)
        kept, held = split(None)
    carved = f"{train.source} (dev carved: fraction {dev_fraction:g}, seed {seed})"
    return _subset(train, kept, train.source), _subset(train, held, carved, name="dev")


def _subset(split: Split, rows: list[int], source: str, name: str | None = None) -> Split:
    labels = [split.labels[i] for i in rows]
    numbers = None if split.numbers is None else tuple(split.numbers[i] for i in rows)
    return Split(name or split.name, [split.texts[i] for i in rows], labels, source, split.multi_label, numbers=numbers)


def _sample(split: Split, limit: int | None, seed: int) -> Split:
    if limit is None or len(split) <= limit:
        return split
    rows = sorted(random.Random(seed).sample(range(len(split)), limit))
    return _subset(split, rows, split.source)


def _fingerprint(splits: dict[str, Split]) -> str:
    digest = hashlib.sha256()
    for split in splits.values():
        for text, label in zip(split.texts, split.labels):
            digest.update(json.dumps([split.name, text, label]).encode() + b"\n")
    return digest.hexdigest()


RELABEL_SUFFIXES = (".csv", ".tsv", ".jsonl")  # the formats `relabelled_text` rewrites in place of a label cell


def relabelled_text(path: str | Path, label_column: str, labels: dict[int, str | int]) -> str:
    """The text of the data file `path` with the label cell of each data row `number` in `labels` (1-based, as
    `Split.numbers` counts rows) set to its new value; every other byte is the file's own.

    Example:
        >>> relabelled_text("train.csv", "label", {2: "Sports"})   # doctest: +SKIP
        'label,text\\nWorld,a\\nSports,b\\n'
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in RELABEL_SUFFIXES:
        raise DataError(
            f"{path}: expected a {', '.join(RELABEL_SUFFIXES)} file to write with corrected labels, found "
            f"{suffix or 'no suffix'!r}; convert the data to CSV or JSON Lines, or drop --fix"
        )
    lines = io.StringIO(decode_file(path), newline="").readlines()  # line endings kept as they are
    if suffix == ".jsonl":
        return "".join(_relabelled_jsonl(lines, label_column, labels))
    return "".join(_relabelled_delimited(lines, suffix == ".tsv", label_column, labels))


def _relabelled_jsonl(lines: list[str], label_column: str, labels: dict[int, str | int]) -> Iterator[str]:
    number = 0
    for line in lines:
        if line.strip():
            number += 1
            if number in labels:
                content = line.rstrip("\r\n")
                values = json.loads(content)
                values[label_column] = labels[number]
                line = json.dumps(values, ensure_ascii=False) + line[len(content) :]
        yield line


def _relabelled_delimited(
    lines: list[str], tsv: bool, label_column: str, labels: dict[int, str | int]
) -> Iterator[str]:
    _lift_csv_field_limit()
    delimiter = "\t" if tsv else ","
    reader = csv.reader(
        lines, delimiter=delimiter, quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL, strict=not tsv
    )
    start, number, label_index = 0, 0, None
    for fields in reader:
        row = "".join(lines[start : reader.line_num])  # the row's own lines, a quoted line break included
        start = reader.line_num
        if not fields:
            yield row
            continue
        if label_index is None:  # the header, or the first row of a headerless AG News file (label first)
            first = [field.strip() for field in fields]
            known = {label_column, *KNOWN_COLUMNS}
            if len(first) == 3 and _as_int(first[0]) is not None and not known.intersection(first):
                label_index = 0
            else:
                label_index = first.index(label_column)
                yield row
                continue
        number += 1
        if number in labels:
            fields[label_index] = str(labels[number])
            ending = row[len(row.rstrip("\r\n")) :]
            if tsv:  # read unquoted: written back the same way
                row = delimiter.join(fields) + ending
            else:
                buffer = io.StringIO()
                quoting = csv.QUOTE_ALL if row.startswith('"') else csv.QUOTE_MINIMAL  # as the row was written
                csv.writer(buffer, delimiter=delimiter, quoting=quoting, lineterminator=ending).writerow(fields)  # type: ignore[arg-type]
                row = buffer.getvalue()
        yield row
