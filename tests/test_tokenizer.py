"""Token-id parity with TF Hub's BERT preprocessing (TF Text), on real and hard text."""

from pathlib import Path

import numpy as np
import preprocess_reference
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_vocabs import build_vocab
from tokenizer_corpus import HARD_CASES, PAIR_CASES

from edgebert.errors import EdgebertError
from edgebert.tokenizer.wordpiece import BertTokenizer, round_robin_lengths

KEYS = ("input_word_ids", "input_mask", "input_type_ids")


def read_sentences(path: Path) -> list[str]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            out.append(parts[2])
    return out


@pytest.fixture(scope="session")
def real_sentences(sentiment_dir):
    texts = []
    for name in ("movieReviewSnippets_GroundTruth.txt", "tweets_GroundTruth.txt"):
        texts += read_sentences(sentiment_dir / name)
    assert len(texts) > 12000
    return texts


@pytest.fixture(scope="session")
def settings_under_test(tmp_path_factory, default_model_dir):
    """(name, vocab, do_lower_case): Google's uncased vocab, and built cased / zh / multi vocabs."""
    d = tmp_path_factory.mktemp("vocabs")
    corpus = HARD_CASES + [a + " " + b for a, b in PAIR_CASES]
    return [
        ("uncased", default_model_dir / "vocab.txt", True),
        ("cased", build_vocab(corpus, d / "cased.txt", lower=False), False),
        ("zh", build_vocab(corpus, d / "zh.txt", lower=True, n_words=200), True),
        ("multi_cased", build_vocab(corpus, d / "multi.txt", lower=False, n_words=8000), False),
    ]


@pytest.fixture(scope="session")
def oracles(settings_under_test, tmp_path_factory):
    d = tmp_path_factory.mktemp("preprocess")
    return {
        name: (BertTokenizer(vocab, lower), preprocess_reference.build(vocab, lower, d / name))
        for name, vocab, lower in settings_under_test
    }


def assert_same(ours: dict, ref: dict, texts):
    for k in KEYS:
        assert ours[k].dtype == np.int32 and ours[k].shape == ref[k].shape
        rows = np.flatnonzero((ours[k] != ref[k]).any(axis=1))
        assert rows.size == 0, f"{k} differs on {rows.size} items, first: {texts[rows[0]]!r}"


@pytest.mark.parametrize("setting", ["uncased", "cased", "zh", "multi_cased"])
def test_hard_cases_single(oracles, setting):
    tok, pre = oracles[setting]
    assert_same(tok(HARD_CASES), preprocess_reference.run(pre, HARD_CASES), HARD_CASES)


@pytest.mark.parametrize("setting", ["uncased", "cased", "zh", "multi_cased"])
@pytest.mark.parametrize("seq_length", [128, 32, 9, 3])
def test_hard_pairs_every_truncation_case(oracles, setting, seq_length):
    tok, pre = oracles[setting]
    a, b = [p[0] for p in PAIR_CASES], [p[1] for p in PAIR_CASES]
    assert_same(tok(a, b, seq_length=seq_length), preprocess_reference.run(pre, a, b, seq_length), a)


def test_round_robin_grid_matches_reference(oracles):
    tok, pre = oracles["uncased"]
    a, b = [], []
    for n in range(0, 9):
        for m in range(0, 9):
            a.append("the " * n)
            b.append("dog " * m)
    for budget in range(0, 10):
        assert_same(tok(a, b, seq_length=budget + 3), preprocess_reference.run(pre, a, b, budget + 3), a)
    assert round_robin_lengths(100, 100, 9) == (5, 4)


@pytest.mark.parametrize("setting", ["uncased", "cased", "multi_cased"])
def test_all_real_sentences_single_and_paired(oracles, real_sentences, setting):
    tok, pre = oracles[setting]
    texts = real_sentences
    assert_same(tok(texts), preprocess_reference.run(pre, texts), texts)
    pairs = texts[1:] + texts[:1]
    assert_same(tok(texts, pairs, seq_length=64), preprocess_reference.run(pre, texts, pairs, 64), texts)


def test_python_and_fast_paths_agree(default_model_dir, real_sentences):
    fast = BertTokenizer(default_model_dir / "vocab.txt", use_fast=True)
    slow = BertTokenizer(default_model_dir / "vocab.txt", use_fast=False)
    assert fast._fast is not None and slow._fast is None
    texts = HARD_CASES + real_sentences[:2000]
    for k in KEYS:
        np.testing.assert_array_equal(fast(texts)[k], slow(texts)[k])


def test_contract_single_string_and_dynamic_padding(default_model_dir):
    tok = BertTokenizer(default_model_dir / "vocab.txt", do_lower_case=True)
    one = tok("The quick brown fox")
    assert set(one) == set(KEYS) and all(v.shape == (1, 128) and v.dtype == np.int32 for v in one.values())
    assert one["input_word_ids"][0, :6].tolist() == [101, 1996, 4248, 2829, 4419, 102]
    dyn = tok(["a b", "the quick brown fox jumps"], dynamic_padding=True)
    assert dyn["input_word_ids"].shape == (2, 7)
    full = tok(["a b", "the quick brown fox jumps"])
    np.testing.assert_array_equal(full["input_word_ids"][:, :7], dyn["input_word_ids"])
    assert tok([])["input_word_ids"].shape == (0, 128)


def test_bad_input_errors(tmp_path, default_model_dir):
    with pytest.raises(EdgebertError, match="vocab file .* not found"):
        BertTokenizer(tmp_path / "nope.txt")
    (tmp_path / "v.txt").write_text("[PAD]\nhello\n")
    with pytest.raises(EdgebertError, match=r"lacks \[UNK\], \[CLS\], \[SEP\]"):
        BertTokenizer(tmp_path / "v.txt")
    tok = BertTokenizer(default_model_dir / "vocab.txt")
    with pytest.raises(EdgebertError, match="seq_length 2 leaves no room"):
        tok("a", "b", seq_length=2)
    with pytest.raises(EdgebertError, match="got 2 texts but 1 text_pairs"):
        tok(["a", "b"], ["c"])
    with pytest.raises(EdgebertError, match="expected text as str, got int"):
        tok([1])


@pytest.fixture(scope="module")
def uncased_tok(default_model_dir):
    return BertTokenizer(default_model_dir / "vocab.txt")


@settings(max_examples=300, deadline=None)
@given(
    a=st.text(max_size=300),
    b=st.one_of(st.none(), st.text(max_size=300)),
    seq_length=st.integers(min_value=3, max_value=80),
)
def test_no_input_crashes_and_shapes_hold(uncased_tok, a, b, seq_length):
    out = uncased_tok([a, a[::-1]], None if b is None else [b, b], seq_length=seq_length)
    for k in KEYS:
        assert out[k].shape == (2, seq_length) and out[k].dtype == np.int32
    mask = out["input_mask"]
    assert (mask[:, 0] == 1).all() and (np.diff(mask, axis=1) <= 0).all()  # contiguous real tokens
    assert (out["input_word_ids"][:, 0] == uncased_tok.cls_id).all()
    assert ((out["input_word_ids"] == uncased_tok.pad_id) == (mask == 0)).all()
    assert (out["input_type_ids"] <= mask).all()
