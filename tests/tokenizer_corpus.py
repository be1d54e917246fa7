"""Hard cases for tokenizer parity: scripts, normalisation traps, packing edge cases."""

HARD_CASES = [
    # accents and combining marks
    "Café naïve résumé coöperate Ångström São Paulo", "e\u0301 vs \u00e9", "A\u030a\u0301", "Zoë Saldaña",
    "ḁ̶̢͎͇̹̈́̃̑͜ zalgo t̷e̷x̷t̷", "\u0301leading combining mark",
    # CJK
    "东京是日本的首都。", "我爱北京天安门!", "日本語のテキスト、カタカナとひらがな。", "한국어 문장입니다.",
    "中文English混合mixed", "𠀀𪜀𫝀𫠠 extension ideographs", "ｶﾀｶﾅ half-width katakana",
    # other scripts
    "مرحبا بالعالم، كيف حالك؟", "ภาษาไทยไม่มีช่องว่าง", "हिन्दी में लिखा गया वाक्य।", "Ελληνικά ΣΊΣΥΦΟΣ σίσυφος",
    "Русский текст, ЁЛКА ёлка", "עברית עם ניקוד: שָׁלוֹם", "Tiếng Việt có dấu",
    # emoji and ZWJ sequences
    "I love it 😍😍😍!", "family 👨\u200d👩\u200d👧\u200d👦 emoji", "flags 🇺🇸🇯🇵 and skin 👍🏽", "❤️ heart with VS16",
    "keycap 1️⃣ #️⃣",
    # zero-width and control characters
    "zero\u200bwidth\u200cnon\u200djoiner", "soft\u00adhyphen", "bidi \u202etxet\u202c mark", "tab\tnew\nline\rret",
    "bell\x07 and null\x00 and esc\x1b[0m", "vertical\x0btab form\x0cfeed", "nel\x85char", "line\u2028sep para\u2029sep",
    "word\ufeffbom", "no\u00a0break\u00a0space", "ideographic\u3000space", "em\u2003space thin\u2009space",
    "ogham\u1680space", "mongolian\u180evowel", "\ufff9interlinear\ufffb", "arabic\u0600number",
    # full-width forms, ligatures, case folding traps
    "ＦＵＬＬ－ＷＩＤＴＨ　ＡＢＣ １２３", "ﬁne ﬂow ﬀ ﬃ", "Straße STRASSE groß", "ẞ capital sharp s",
    "İstanbul ıstanbul TITLE İ", "ǅungla ǈ ǋ", "ﬆ st ligature", "Ⅻ roman numeral ⅻ", "① circled ⑳",
    "x² + y³ = z⁴", "H₂O", "µ micro Ω ohm K kelvin Å angstrom", "ſ long s", "ΐ ΰ", "ᾈ greek iota",
    # long words and numbers
    "a" * 99, "b" * 100, "c" * 101, "é" * 50, "é" * 51, "ü" * 49 + "x", "中" * 40, "ß" * 60,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "pneumonoultramicroscopicsilicovolcanoconiosis" * 3,
    "1,234,567.89 12.5% $1,000 €20 ¥300 3/4 1e-10 +44 (0) 20 7946 0958", "2024-01-31T12:34:56Z",
    # URLs, code, punctuation
    "https://www.example.com/path?query=1&x=y#frag", "email me: john.doe+tag@example.co.uk",
    "def f(x): return x**2 // 3 != 4", "«guillemets» „quotes“ ‘single’ —dash– …", "¿Qué? ¡Sí!",
    "@user #hashtag $TICKER %pct ^caret ~tilde `back` |pipe| \\slash",
    "[CLS] [SEP] [UNK] [MASK] [PAD] literal", "##not a continuation", "don't won't y'all",
    # empty and whitespace-only
    "", " ", "   \t\n  ", "\u200b", "\u00a0", "\x00",
    # long text
    " ".join(["the movie was surprisingly good and the actors were excellent"] * 40),
    "word " * 300,
]

PAIR_CASES = [
    ("short", "also short"),
    ("a " * 100, "b " * 100),
    ("a " * 200, "tiny"),
    ("tiny", "b " * 200),
    ("a " * 62, "b " * 63),
    ("a " * 63, "b " * 63),
    ("a " * 64, "b " * 61),
    ("", "only second"),
    ("only first", ""),
    ("", ""),
    ("東京" * 80, "Café " * 80),
]
