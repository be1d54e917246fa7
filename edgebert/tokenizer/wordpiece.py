"""BERT tokenization with exact parity to TF Hub's ``bert_*_preprocess`` models, no TensorFlow.

TF Hub's preprocessing runs TF Text's ``BertTokenizer`` and ``bert_pack_inputs``. Each step
here reproduces one of theirs, including the details other ports get wrong:

1. lower-casing (uncased models only) is ICU's NFKC_Casefold (``case_fold_utf8``: it also
   applies NFKC and drops default-ignorable code points, so ``ß`` -> ``ss``, ``ﬁ`` -> ``fi``,
   full-width -> ASCII), then NFD and removal of non-spacing marks (accents);
2. control and format characters (``\\p{Cc}``, ``\\p{Cf}``) become spaces;
3. words split on RE2's ``\\s`` (ASCII whitespace only: a no-break space inside a cased
   word is not a split), punctuation and CJK ideographs are single tokens;
4. WordPiece: greedy longest match with ``##`` continuations; a word over 100 *bytes*
   (TF Text's ``max_bytes_per_word``) becomes ``[UNK]``;
5. ``[CLS] a [SEP] (b [SEP])`` packing, truncated round-robin between the segments.

Step 4 runs in Python with a per-word cache, or in Hugging Face ``tokenizers`` (Rust)
with ``use_fast=True``; both give the same ids.
"""

from __future__ import annotations

import os
import re
import sys
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from edgebert.errors import EdgebertError

MAX_BYTES_PER_WORD = 100
_CACHE_LIMIT = 200_000
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)
_ASCII_PUNCT = "".join(chr(c) for c in range(0x21, 0x7F) if not chr(c).isalnum())
# Prepended concatenation marks and others that are Cf but not default-ignorable.
_CF_NOT_IGNORABLE = {
    0x0600,
    0x0601,
    0x0602,
    0x0603,
    0x0604,
    0x0605,
    0x06DD,
    0x070F,
    0x0890,
    0x0891,
    0x08E2,
    0x110BD,
    0x110CD,
    0xFFF9,
    0xFFFA,
    0xFFFB,
} | set(range(0x13430, 0x13440))
_OTHER_IGNORABLE = (
    [0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180B, 0x180C, 0x180D, 0x180F, 0x3164, 0xFFA0, 0x2065, 0xE0000]
    + list(range(0xFFF0, 0xFFF9))
    + list(range(0xE0002, 0xE0020))
    + list(range(0xE0080, 0xE0100))
    + list(range(0xFE00, 0xFE10))
    + list(range(0xE0100, 0xE01F0))
    + list(range(0xE01F0, 0xE1000))
)


_ASCII_CONTROL = {c: " " for c in list(range(0x20)) + [0x7F]}
# The full splitter's character class has thousands of members and is 7x slower to scan;
# ASCII text can only hit its ASCII part.
_ASCII_SPLIT = re.compile(f"[{re.escape(_ASCII_PUNCT)}]|[^{re.escape(_ASCII_PUNCT)}\t\n\f\r ]+")


@lru_cache(maxsize=1)
def _tables():
    """Translate tables and the word-split regex, built once from ``unicodedata``."""
    control_to_space: dict[int, str] = {}
    ignorable: dict[int, None] = {}
    marks: dict[int, None] = {}
    punct: list[str] = []
    for cp in range(sys.maxunicode + 1):
        cat = unicodedata.category(chr(cp))
        if cat in ("Cc", "Cf"):
            control_to_space[cp] = " "
            if cat == "Cf" and cp not in _CF_NOT_IGNORABLE:
                ignorable[cp] = None
        elif cat == "Mn":
            marks[cp] = None
        elif cat[0] == "P" and cp > 0x7F:
            punct.append(chr(cp))
    for cp in _OTHER_IGNORABLE:
        ignorable[cp] = None
    cjk = "".join(f"{chr(a)}-{chr(b)}" for a, b in _CJK_RANGES)
    single = re.escape(_ASCII_PUNCT + "".join(punct)) + cjk
    # RE2's \s (TF Text's delimiter) is [\t\n\f\r ] only; \v is Cc and already a space.
    splitter = re.compile(f"[{single}]|[^{single}\\t\\n\\f\\r ]+")
    return control_to_space, ignorable, marks, splitter


def _casefold_strip(text: str, ignorable: dict, marks: dict) -> str:
    # NFKC_Casefold = drop default-ignorables, NFKC, full case folding (to a fixed point);
    # the NFD that follows it in TF Text makes NFKD here equivalent.
    text = unicodedata.normalize("NFKD", text.translate(ignorable)).casefold()
    text = unicodedata.normalize("NFKD", text)
    return text.translate(marks)


class BertTokenizer:
    """BERT WordPiece tokenizer and packer with TF Hub preprocessing's exact ids.

    Args:
      vocab_file: WordPiece vocabulary, one token a line (the line number is the id).
      do_lower_case: True for uncased models (case folding + accent stripping).
      use_fast: run WordPiece in Hugging Face ``tokenizers`` (when installed) instead of
        Python. Off by default: with the per-word cache the Python path measured faster
        (59.6k vs 50.9k sentences/s, benchmarks/tokenizer_throughput.py), and one
        dependency fewer matters on a Raspberry Pi.
    """

    def __init__(self, vocab_file: str | os.PathLike, do_lower_case: bool = True, use_fast: bool = False):
        path = Path(vocab_file)
        if not path.is_file():
            raise EdgebertError(f"vocab file {path} not found", "pass the model's vocab.txt")
        try:
            tokens = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise EdgebertError(f"vocab file {path} is not UTF-8 text", "pass the model's vocab.txt") from None
        self.vocab: dict[str, int] = {}
        for i, t in enumerate(tokens):
            self.vocab.setdefault(t, i)  # TF's StaticHashTable would reject duplicates; keep the first
        missing = [s for s in SPECIALS if s not in self.vocab]
        if missing:
            raise EdgebertError(
                f"vocab file {path} lacks {', '.join(missing)}", "a BERT vocab needs [PAD], [UNK], [CLS] and [SEP]"
            )
        self.vocab_file = path
        self.do_lower_case = bool(do_lower_case)
        self.pad_id, self.unk_id = self.vocab["[PAD]"], self.vocab["[UNK]"]
        self.cls_id, self.sep_id = self.vocab["[CLS]"], self.vocab["[SEP]"]
        self._fast = _make_fast(self.vocab) if use_fast else None
        # Natural text repeats its words: WordPiece runs once per distinct word.
        self._piece_cache: dict[str, list[int]] = {}

    # ------------------------------------------------------------------ words
    def basic_tokenize(self, text: str) -> list[str]:
        """TF Text's BasicTokenizer: normalisation and word split."""
        if not isinstance(text, str):
            raise EdgebertError(f"expected text as str, got {type(text).__name__}", "pass strings")
        control, ignorable, marks, splitter = _tables()
        if text.isascii():
            # Same result, 5x faster: ASCII case folding is lower(), and only C0/DEL are Cc.
            if self.do_lower_case:
                text = text.lower()
            if not text.isprintable():
                text = text.translate(_ASCII_CONTROL)
            return _ASCII_SPLIT.findall(text)
        if self.do_lower_case:
            text = _casefold_strip(text, ignorable, marks)
        return splitter.findall(text.translate(control))

    def _words_for_wordpiece(self, text: str) -> list[str]:
        words = self.basic_tokenize(text)
        # TF Text limits words by UTF-8 bytes; mapping an over-long word to the literal
        # "[UNK]" token makes WordPiece emit exactly [UNK] (the splitter never yields "[").
        return [
            w if len(w) * 4 <= MAX_BYTES_PER_WORD or len(w.encode("utf-8")) <= MAX_BYTES_PER_WORD else "[UNK]"
            for w in words
        ]

    def tokenize_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """WordPiece ids of each text, without special tokens."""
        words = [self._words_for_wordpiece(t) for t in texts]
        cache = self._piece_cache
        misses = list({w for ws in words for w in ws if w not in cache})
        if misses:
            if len(cache) + len(misses) > _CACHE_LIMIT:
                cache.clear()
            if self._fast is not None:
                encs = self._fast.encode_batch([[w] for w in misses], is_pretokenized=True, add_special_tokens=False)
                cache.update((w, e.ids) for w, e in zip(misses, encs))
            else:
                cache.update((w, self._wordpiece(w)) for w in misses)
        return [[p for w in ws for p in cache[w]] for ws in words]

    def tokenize(self, text: str) -> list[str]:
        """Word pieces of one text, as strings."""
        inv = {i: t for t, i in self.vocab.items()}
        return [inv[i] for i in self.tokenize_ids([text])[0]]

    def _wordpiece(self, word: str) -> list[int]:
        """Greedy longest-match-first WordPiece (the plain-Python path)."""
        if word == "[UNK]":
            return [self.unk_id]
        pieces, start, vocab = [], 0, self.vocab
        while start < len(word):
            end, cur = len(word), None
            while start < end:
                sub = word[start:end] if start == 0 else "##" + word[start:end]
                if sub in vocab:
                    cur = vocab[sub]
                    break
                end -= 1
            if cur is None:
                return [self.unk_id]
            pieces.append(cur)
            start = end
        return pieces

    # ------------------------------------------------------------------ packing
    def __call__(
        self,
        texts: str | Sequence[str],
        text_pairs: str | Sequence[str] | None = None,
        seq_length: int = 128,
        dynamic_padding: bool = False,
    ) -> dict[str, np.ndarray]:
        """Packs texts (and optional pairs) into int32 ``[batch, seq_length]`` arrays.

        Returns ``input_word_ids``, ``input_mask`` and ``input_type_ids``. With
        ``dynamic_padding`` the width is the longest packed item (at most ``seq_length``).
        """
        texts = [texts] if isinstance(texts, str) else list(texts)
        if text_pairs is not None:
            text_pairs = [text_pairs] if isinstance(text_pairs, str) else list(text_pairs)
            if len(text_pairs) != len(texts):
                raise EdgebertError(
                    f"got {len(texts)} texts but {len(text_pairs)} text_pairs", "pass one pair per text"
                )
        specials = 2 if text_pairs is None else 3
        if seq_length < specials:
            raise EdgebertError(
                f"seq_length {seq_length} leaves no room for [CLS]/[SEP]", f"use seq_length >= {specials}"
            )
        a_ids = self.tokenize_ids(texts)
        b_ids = self.tokenize_ids(text_pairs) if text_pairs is not None else None
        budget = seq_length - specials
        rows = []
        for n, a in enumerate(a_ids):
            if b_ids is None:
                a = a[:budget]
                rows.append(([self.cls_id, *a, self.sep_id], len(a) + 2))
            else:
                b = b_ids[n]
                la, lb = round_robin_lengths(len(a), len(b), budget)
                rows.append(([self.cls_id, *a[:la], self.sep_id, *b[:lb], self.sep_id], la + 2))
        width = seq_length
        if dynamic_padding:
            width = max((len(r[0]) for r in rows), default=specials)
        pad = [self.pad_id] * width
        ids = np.array([row + pad[len(row) :] for row, _ in rows], np.int32).reshape(len(rows), width)
        lengths = np.array([len(row) for row, _ in rows], np.int32).reshape(-1, 1)
        firsts = np.array([first for _, first in rows], np.int32).reshape(-1, 1)
        pos = np.arange(width, dtype=np.int32)[None]
        mask = (pos < lengths).astype(np.int32)
        types = ((pos >= firsts) & (pos < lengths)).astype(np.int32)
        return {"input_word_ids": ids, "input_mask": mask, "input_type_ids": types}


def round_robin_lengths(a: int, b: int, budget: int) -> tuple[int, int]:
    """Kept lengths of two segments, as TF Text's RoundRobinTrimmer keeps them.

    Tokens are taken one at a time from each segment in turn (the first segment first)
    until ``budget`` is reached or both are exhausted.
    """
    if a + b <= budget:
        return a, b
    la = min(a, max(budget - b, (budget + 1) // 2))
    return la, min(b, budget - la)


def _make_fast(vocab: dict[str, int]):
    try:
        from tokenizers import Tokenizer
        from tokenizers.models import WordPiece
    except ImportError:
        return None
    # Normalisation and word splitting are done above (where TF Text and the stock
    # BertNormalizer / BertPreTokenizer differ); the Rust side only runs WordPiece.
    tok = Tokenizer(WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=1 << 30))
    return tok
