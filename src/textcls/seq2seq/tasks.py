"""Generated parallel data for the lesson: two tasks where attention's alignment can be seen.

    dates    human-written dates in many formats -> ISO `YYYY-MM-DD`. The year sits at the end of
             most inputs and comes first in the output, so the alignment crosses.
    reorder  a toy translation between two made-up languages: every source word maps through a fixed
             bilingual dictionary, and an adjective followed by a noun swaps order (as English ->
             French does). Sources run from 5 to 60 words, so quality can be plotted against length.

Everything is a pure function of the seed; the reorder dictionary is fixed (its own seed), so every
data set of that task speaks the same two languages.

Example:
    >>> make_pairs("dates", 2, seed=0)   # doctest: +SKIP
    [('Sat, 14 Aug 1982', '1982-08-14'), ('11/30/61', '1961-11-30')]
"""

from __future__ import annotations

import calendar
import datetime
import random
from collections.abc import Callable

from textcls.errors import ConfigError

TASKS = ("dates", "reorder")
MIN_WORDS, MAX_WORDS = 5, 60  # reorder source lengths, uniform in between

# ---- dates ----------------------------------------------------------------------------------
_FIRST_DAY = datetime.date(1900, 1, 1).toordinal()
_LAST_DAY = datetime.date(2099, 12, 31).toordinal()
MONTHS = list(calendar.month_name)[1:]
WEEKDAYS = list(calendar.day_name)


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


# Each format writes a date; those with a two-digit year are used only for 1950-2049, where the
# century is unambiguous (50-99 -> 19xx, 00-49 -> 20xx).
_FORMATS: list[tuple[bool, Callable[[datetime.date], str]]] = [
    (False, lambda d: f"{WEEKDAYS[d.weekday()]} {_ordinal(d.day)} of {MONTHS[d.month - 1]} {d.year}"),
    (False, lambda d: f"{WEEKDAYS[d.weekday()]} {d.day} {MONTHS[d.month - 1]} {d.year}"),
    (False, lambda d: f"{MONTHS[d.month - 1].lower()} {d.day}, {d.year}"),
    (False, lambda d: f"{MONTHS[d.month - 1]} {d.day}, {d.year}"),
    (False, lambda d: f"{MONTHS[d.month - 1].upper()} {d.day} {d.year}"),
    (False, lambda d: f"{d.day} {MONTHS[d.month - 1]} {d.year}"),
    (False, lambda d: f"{_ordinal(d.day)} {MONTHS[d.month - 1].lower()} {d.year}"),
    (False, lambda d: f"the {_ordinal(d.day)} of {MONTHS[d.month - 1].lower()}, {d.year}"),
    (False, lambda d: f"{MONTHS[d.month - 1][:3]} {d.day} {d.year}"),
    (False, lambda d: f"{d.day} {MONTHS[d.month - 1][:3].lower()} {d.year}"),
    (False, lambda d: f"{WEEKDAYS[d.weekday()][:3]}, {d.day} {MONTHS[d.month - 1][:3]} {d.year}"),
    (False, lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}"),
    (False, lambda d: f"{d.month}/{d.day}/{d.year}"),
    (True, lambda d: f"{d.month}/{d.day}/{d.year % 100:02d}"),
    (True, lambda d: f"{MONTHS[d.month - 1][:3].lower()} {d.day} '{d.year % 100:02d}"),
]


def _date_pair(rng: random.Random) -> tuple[str, str]:
    day = datetime.date.fromordinal(rng.randint(_FIRST_DAY, _LAST_DAY))
    two_digit_year, write = _FORMATS[rng.randrange(len(_FORMATS))]
    if two_digit_year and not 1950 <= day.year <= 2049:
        year = 1950 + day.year % 100 if day.year % 100 >= 50 else 2000 + day.year % 100
        if (day.month, day.day) == (2, 29) and not calendar.isleap(year):  # 2096-02-29 has no 2046 twin
            day = day.replace(day=28)
        day = day.replace(year=year)
    return write(day), day.isoformat()


# ---- reorder --------------------------------------------------------------------------------
_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "kl", "st", "tr"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ou"]
_CODAS = ["", "", "n", "k", "s", "m", "x"]
LEXICON_SEED = 1409  # the dictionary never changes with --seed: one pair of languages
NOUNS, ADJECTIVES, OTHERS = 40, 25, 35  # word classes of the source language


def _words(rng: random.Random, count: int, taken: set[str], syllables: int) -> list[str]:
    words: list[str] = []
    while len(words) < count:
        word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables)) + rng.choice(_CODAS)
        if word not in taken:
            taken.add(word)
            words.append(word)
    return words


def lexicon() -> dict[str, tuple[list[str], list[str]]]:
    """The fixed bilingual dictionary: word class -> (source words, their target words), aligned by index.

    Source words have two syllables, target words one or three, so the two languages look apart.
    """
    rng = random.Random(LEXICON_SEED)
    taken: set[str] = set()
    sizes = {"noun": NOUNS, "adjective": ADJECTIVES, "other": OTHERS}
    source = {kind: _words(rng, size, taken, 2) for kind, size in sizes.items()}
    target = {kind: _words(rng, size, taken, 1 if kind == "other" else 3) for kind, size in sizes.items()}
    return {kind: (source[kind], target[kind]) for kind in sizes}


def _reorder_pair(rng: random.Random, words: dict[str, tuple[list[str], list[str]]], length: int) -> tuple[str, str]:
    source: list[str] = []
    target: list[str] = []

    def pick(kind: str) -> tuple[str, str]:
        index = rng.randrange(len(words[kind][0]))
        return words[kind][0][index], words[kind][1][index]

    while len(source) < length:
        roll = rng.random()
        if roll < 0.35 and length - len(source) >= 2:  # adjective + noun: swapped in the target
            (adjective, adjective_t), (noun, noun_t) = pick("adjective"), pick("noun")
            source += [adjective, noun]
            target += [noun_t, adjective_t]
        else:  # a lone noun, a lone adjective (before a non-noun: no swap) or another word
            kind = "noun" if roll < 0.6 else "other"
            if roll >= 0.9 and length - len(source) >= 2:
                (adjective, adjective_t), (other, other_t) = pick("adjective"), pick("other")
                source += [adjective, other]
                target += [adjective_t, other_t]
                continue
            word, word_t = pick(kind)
            source.append(word)
            target.append(word_t)
    return " ".join(source), " ".join(target)


def make_pairs(task: str, rows: int, seed: int = 0) -> list[tuple[str, str]]:
    """`rows` (source, target) pairs of `task`, a pure function of `seed`.

    Example:
        >>> len(make_pairs("reorder", 3, seed=1))
        3
    """
    if task not in TASKS:
        raise ConfigError(f"task: expected one of {list(TASKS)}, found {task!r}; pick one of them")
    if rows < 1:
        raise ConfigError(f"rows: expected a positive number of rows, found {rows}; pass --rows 1 or more")
    rng = random.Random(f"{task}-{seed}")
    if task == "dates":
        return [_date_pair(rng) for _ in range(rows)]
    words = lexicon()
    return [_reorder_pair(rng, words, rng.randint(MIN_WORDS, MAX_WORDS)) for _ in range(rows)]


def make_splits(task: str, rows: int, seed: int = 0) -> dict[str, list[tuple[str, str]]]:
    """train (`rows` pairs), dev and test (a tenth of that each, at least 20), drawn with distinct seeds."""
    held_out = max(20, rows // 10)
    return {
        "train": make_pairs(task, rows, seed),
        "dev": make_pairs(task, held_out, seed + 1_000_003),
        "test": make_pairs(task, held_out, seed + 2_000_003),
    }
