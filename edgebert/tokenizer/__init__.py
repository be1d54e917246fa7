"""BERT's WordPiece tokenizer in pure Python, token for token equal to TensorFlow Text's
``BertTokenizer`` and the TF Hub preprocessing models (lower-casing, accent stripping,
punctuation and CJK splitting, greedy longest-match WordPiece)."""

from edgebert.tokenizer.wordpiece import BertTokenizer, round_robin_lengths

__all__ = ["BertTokenizer", "round_robin_lengths"]
