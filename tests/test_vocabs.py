"""Test vocabularies for cased, Chinese and multilingual settings (the real ones cannot be
downloaded here): every character of the corpus as a word start and a ``##`` piece, plus its
most frequent words, as Google built their vocabs (characters first, then pieces)."""

from collections import Counter
from pathlib import Path

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_vocab(texts, path: Path, lower: bool, n_words: int = 3000) -> Path:
    import unicodedata

    def norm(t):
        if not lower:
            return t
        t = unicodedata.normalize("NFKD", t).casefold()
        return "".join(c for c in unicodedata.normalize("NFKD", t) if unicodedata.category(c) != "Mn")

    chars, words = Counter(), Counter()
    for t in texts:
        t = norm(t)
        chars.update(c for c in t if not c.isspace() and unicodedata.category(c)[0] != "C")
        words.update(w for w in t.split() if w.isalpha() and len(w) > 1)
    tokens = list(SPECIALS)
    seen = set(tokens)
    for c, _ in chars.most_common():
        for tok in (c, "##" + c):
            if tok not in seen:
                seen.add(tok)
                tokens.append(tok)
    for w, _ in words.most_common(n_words):
        for tok in (w, "##" + w[1:], w[:3], "##" + w[3:]):
            if tok and tok != "##" and tok not in seen:
                seen.add(tok)
                tokens.append(tok)
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return path
