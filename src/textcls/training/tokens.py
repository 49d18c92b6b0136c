"""Tokenisation for every torch family: texts through the Rust `tokenizers.Tokenizer`
(`encode_batch_fast`, all cores) into two compact arrays (`TokenIds`), cached on disk by (texts,
tokenizer, max_length) so a resumed run or a second family on the same data reads them back.

Example:
    >>> token_ids = encode_ids(tokenizer, ["Stocks fell.", "A goal!"], max_length=128)  # doctest: +SKIP
    >>> token_ids.lengths.tolist()                                                       # doctest: +SKIP
    [5, 5]
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import weakref
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import numpy as np

from textcls.data.windows import Windowing, Windows, log_line, special_tokens
from textcls.files import write_atomic
from textcls.training.batching import round_up

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

# What textcls tokenises with: a Hugging Face tokenizer (fast or slow), or a Rust `tokenizers.Tokenizer`.
TextTokenizer: TypeAlias = "PreTrainedTokenizerBase | Tokenizer"


CACHE_ENV = "TEXTCLS_CACHE_DIR"


CACHE_FORMAT = 1


FULL_LENGTH = None  # `encode_ids` at this length keeps every token (`encode_windows` cuts them)


ENCODE_CHUNK = 16_384  # texts per encode call: large enough for all cores, small enough for a progress bar


@dataclass(frozen=True)
class TokenIds:
    """Token ids of many texts as two compact arrays: every text's ids end to end, and where each starts.

    `ids` is (total tokens,) int32; `offsets` is (texts + 1,) int64, text i being `ids[offsets[i]:offsets[i+1]]`.
    Indexing gives one text's ids, so it also serves where a list of id lists is expected.
    """

    ids: np.ndarray
    offsets: np.ndarray

    @classmethod
    def from_lists(cls, sequences: Iterable[Sequence[int] | np.ndarray]) -> TokenIds:
        arrays = [np.asarray(ids, dtype=np.int32) for ids in sequences]
        offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
        np.cumsum([len(a) for a in arrays], out=offsets[1:])
        ids = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int32)
        return cls(ids, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, row: int) -> np.ndarray:
        return self.ids[self.offsets[row] : self.offsets[row + 1]]

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per text, (texts,)."""
        return np.diff(self.offsets)

    def pad(self, rows: Sequence[int] | np.ndarray, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
        """`input_ids` and `attention_mask` of `rows`, right-padded to their longest text rounded up to a
        multiple of 8; both (batch, seq) int64."""
        rows = np.asarray(rows, dtype=np.int64)
        starts, lengths = self.offsets[rows], self.lengths[rows]
        width = int(round_up(int(lengths.max(initial=1))))
        mask = np.arange(width)[None, :] < lengths[:, None]  # (batch, seq)
        input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
        # the real tokens of every row, in row-major order: exactly the positions `mask` selects
        positions = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths) + np.arange(
            lengths.sum()
        )
        input_ids[mask] = self.ids[positions]
        return input_ids, mask.astype(np.int64)


# Copies of Rust tokenizers by (Hugging Face or Rust tokenizer, max_length): a copy costs about 30 ms
# (a JSON round trip), which inference on a few texts would otherwise pay on every call.
_RUST_COPIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def rust_tokenizer(tokenizer: TextTokenizer, max_length: int | None = FULL_LENGTH) -> Tokenizer | None:
    """A copy of the `tokenizers.Tokenizer` behind `tokenizer` (itself one, or a Hugging Face fast
    tokenizer), without padding, truncating at `max_length` (None: keeping every token), so the
    original is left alone and its serialisation names the tokenizer alone; None for a slow tokenizer.
    Made once per tokenizer and length and never changed after, so threads may share it."""
    try:
        copies = _RUST_COPIES.setdefault(tokenizer, {})
    except TypeError:  # an object that takes no weak reference: a fresh copy each call
        copies = {}
    if max_length not in copies:
        copies[max_length] = _rust_copy(tokenizer, max_length)
    return copies[max_length]


def _rust_copy(tokenizer: TextTokenizer, max_length: int | None) -> Tokenizer | None:
    from tokenizers import Tokenizer

    rust: Tokenizer | None = tokenizer if isinstance(tokenizer, Tokenizer) else None
    if rust is None and getattr(tokenizer, "is_fast", False):  # a fast Hugging Face tokenizer wraps one
        rust = getattr(tokenizer, "backend_tokenizer", None)
    if rust is None:
        return None
    copy = Tokenizer.from_str(rust.to_str())
    copy.no_padding()
    copy.no_truncation()
    if max_length is not None:
        copy.enable_truncation(max_length)
    return copy


def _slow(tokenizer: TextTokenizer) -> PreTrainedTokenizerBase:
    """`tokenizer` where it has no Rust copy (`rust_tokenizer` is None): a slow Hugging Face tokenizer."""
    from tokenizers import Tokenizer

    if isinstance(tokenizer, Tokenizer):
        raise TypeError("a tokenizers.Tokenizer is its own Rust tokenizer")
    return tokenizer


def pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The id a Hugging Face tokenizer pads with; 0 when it names none."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def encode_ids(
    tokenizer: TextTokenizer,
    texts: Sequence[str],
    max_length: int | None,
    *,
    cache: bool = True,
    desc: str = "tokenising",
) -> TokenIds:
    """Ids of `texts` with the model's special tokens, cut to `max_length`; read from the cache when
    these texts were tokenised before with this tokenizer and length.

    `tokenizer` is a `tokenizers.Tokenizer` or a Hugging Face tokenizer (a slow one is called on the list).
    """
    texts = list(texts)
    path = _cache_path(texts, rust_tokenizer(tokenizer), tokenizer, max_length) if cache and texts else None
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                cached = TokenIds(stored["ids"], stored["offsets"])
            if len(cached) == len(texts):
                log.info("%s: %d texts' token ids read from the cache %s", desc, len(texts), path)
                return cached
        except (
            OSError,
            ValueError,
            KeyError,
            EOFError,
            zipfile.BadZipFile,
        ) as error:  # a damaged cache file is only a lost shortcut
            log.warning("ignoring the unreadable token cache %s (%s); tokenising again", path, error)
    started = time.perf_counter()
    token_ids = _encode(rust_tokenizer(tokenizer, max_length), tokenizer, texts, max_length, desc)
    seconds = time.perf_counter() - started
    log.log(
        logging.INFO if cache else logging.DEBUG,  # inference tokenises small batches often: no log line each time
        "%s: %d texts in %.2f s (%.0f texts/s)",
        desc,
        len(texts),
        seconds,
        len(texts) / max(seconds, 1e-9),
    )
    if path is not None:
        try:
            write_atomic(path, lambda temporary: _save_npz(temporary, token_ids))
        except OSError as error:  # a read-only or full cache folder costs speed, not the run
            log.warning("could not cache token ids in %s (%s)", path, error)
    return token_ids


def _encode(
    rust: Tokenizer | None, tokenizer: TextTokenizer, texts: list[str], max_length: int | None, desc: str
) -> TokenIds:
    """Ids of `texts`, cut to `max_length` tokens (by `rust`, a copy truncating there, or by the slow
    `tokenizer` when there is none); all of each text's ids when `max_length` is None."""
    from tqdm.auto import tqdm

    chunks = [texts[start : start + ENCODE_CHUNK] for start in range(0, len(texts), ENCODE_CHUNK)]
    encoded: list[Sequence[int]] = []
    if rust is not None:
        encode = getattr(rust, "encode_batch_fast", rust.encode_batch)  # _fast: no character offsets
    for chunk in tqdm(chunks, desc=desc, unit="chunk", disable=len(chunks) < 2, leave=False):
        if rust is not None:
            encoded.extend(encoding.ids for encoding in encode(chunk))
        else:
            encoded.extend(
                _slow(tokenizer)(chunk, truncation=max_length is not None, max_length=max_length)["input_ids"]
            )
    return TokenIds.from_lists(encoded)


def encode_windows(
    tokenizer: TextTokenizer,
    texts: Sequence[str],
    windowing: Windowing,
    *,
    cache: bool = True,
    desc: str = "tokenising",
) -> tuple[TokenIds, Windows]:
    """Whole texts tokenised (cached like `encode_ids`, under no length), then cut into the model's inputs
    by `windowing` (`--long-text`): the windows' ids, and which text each window belongs to.

    Training (`cache`) logs how many texts exceed max_length and by how much.
    """
    full = encode_ids(tokenizer, texts, FULL_LENGTH, cache=cache, desc=desc)
    rust = rust_tokenizer(tokenizer)
    if rust is not None:
        prefix, suffix = special_tokens(lambda text: rust.encode(text).ids)
    else:
        slow = _slow(tokenizer)
        prefix, suffix = special_tokens(lambda text: slow(text)["input_ids"])
    windows = windowing.cut(full, prefix, suffix)
    if cache:
        log.info("%s", log_line(windows.stats(), windowing, desc))
    return TokenIds.from_lists(windows.sequences), windows


def _save_npz(path: Path, token_ids: TokenIds) -> None:
    with open(path, "wb") as handle:  # a handle: np.savez would append ".npz" to a file name
        np.savez(handle, ids=token_ids.ids, offsets=token_ids.offsets)


def cache_dir() -> Path:
    """Where token ids are cached: $TEXTCLS_CACHE_DIR, else ~/.cache/textcls/token-ids."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "textcls" / "token-ids"


def _cache_path(texts: list[str], rust: Tokenizer | None, tokenizer: TextTokenizer, max_length: int | None) -> Path:
    """The cache file of these texts under this tokenizer and length: a change in any of them is a new file."""
    digest = hashlib.sha256(f"textcls-token-ids {CACHE_FORMAT} {max_length}\n".encode())
    recipe = (
        rust.to_str() if rust is not None else f"{type(tokenizer).__name__} {getattr(tokenizer, 'name_or_path', '')}"
    )
    digest.update(hashlib.sha256(recipe.encode()).digest())
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return cache_dir() / f"{digest.hexdigest()[:40]}.npz"
