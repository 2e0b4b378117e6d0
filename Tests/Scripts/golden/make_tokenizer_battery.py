#!/usr/bin/env python3
"""Writes Tests/TokenizerTests/Golden/tokenizer_battery.json: hard strings and their token ids.

The ids come from Hugging Face transformers' tokenizer built from the GGUF file
(AutoTokenizer.from_pretrained(dir, gguf_file=name)), encoded with add_special_tokens=False and
special tokens in the text recognised (split_special_tokens=False).

transformers' GGUF conversion gives a "gpt2" model a plain ByteLevel pre-tokenizer, but
SmolLM2's own tokenizer.json (and llama.cpp for tokenizer.ggml.pre = "smollm") first splits
every digit into its own piece: pre_tokenizers.Sequence([Digits(individual_digits=True),
ByteLevel(add_prefix_space=False)]). The golden ids use that faithful pre-tokenizer; the strings
where plain GGUF conversion disagrees are listed in the output's "notes" and printed.

Usage: /work/ref/venv/bin/python Tests/Scripts/golden/make_tokenizer_battery.py [path/to/model.gguf]
"""
import json
import os
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
DEFAULT_GGUF = "data/models/SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = os.path.join(REPO, "Tests", "TokenizerTests", "Golden", "tokenizer_battery.json")

PARAGRAPH = (
    "The quick brown fox jumps over the lazy dog. In 1859, Charles Darwin published "
    "\"On the Origin of Species\", which introduced the scientific theory that populations "
    "evolve over the course of generations through a process of natural selection. It wasn't "
    "until the 1930s-40s that the modern synthesis united Mendelian genetics with Darwin's "
    "ideas; today, researchers sequence genomes at ~$600 each (down from $2.7 billion in 2003!). "
    "Meanwhile, naïve café-goers in Zürich order crème brûlée, and the sign reads: "
    "“Ne pas déranger — s'il vous plaît.”\n\nSecond paragraph:\tindented by a tab,   three spaces, "
    "and ending with trailing spaces   \n"
)

CASES = [
    "",
    "Hello, world!",
    "hello world",
    " leading space",
    "   three leading spaces",
    "trailing spaces   ",
    "a  b   c    d",
    "tab\tseparated\t\tvalues\t",
    "line one\nline two\n\nline four\n",
    "windows\r\nline\r\nendings\r\n",
    "mixed \t \n whitespace \n\n  x",
    "\n\n\n",
    "    ",
    " \n ",
    "don't won't can't I'll we've they're she'd I'm it's",
    "DON'T I'LL 'S 'Re 'LL O'Neil",
    "''quoted'' and 'single' and \"double\"",
    "12345678901234567890",
    "3.14159 and -2.5e10 and 0.001",
    "1,000,000 people; 1.000.000 Leute",
    "2024-01-15T13:45:00Z and 15/01/2024",
    "a  1",
    "x \n 1",
    "Total:   42",
    "  123",
    "v1.2.3-beta+build.5",
    "https://example.com/path?query=1&x=y#frag",
    "mail me at jane.doe+tag@example.co.uk!",
    "def f(x):\n    return x ** 2  # square\n",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    "if x != y && z >= 10 || !flag { print(\"ok\") }",
    "!!!???...---***",
    "...!?!?! ,,, ;;; :::",
    "naïve café résumé façade Zürich",
    "e\u0301 vs \u00e9 (combining vs precomposed)",
    "\u0301\u0301 lone combining marks \u0308",
    "Emoji: 😀 😂 👍🏽 ❤️",
    "Family: 👨\u200d👩\u200d👧\u200d👦 and rainbow flag 🏳️\u200d🌈",
    "Flags: 🇺🇸🇫🇷🇯🇵🇩🇪",
    "中文测试：你好，世界！",
    "日本語のテキストとカタカナ、ひらがな。",
    "한국어 텍스트입니다",
    "العربية: مرحبا بالعالم ١٢٣",
    "עברית: שלום עולם",
    "हिन्दी: नमस्ते दुनिया ४५६",
    "Ελληνικά και Русский текст",
    "no\u00a0break\u2009thin\u3000ideographic\u2028sep",
    "\ufeffBOM at start and zero\u200bwidth",
    "<|im_start|>user\nhi<|im_end|>",
    "<|im_start",
    "<|im_start|",
    "<|endoftext|><|endoftext|>",
    "x<|im_end|>y",
    " <|im_start|> spaced <|im_end|> ",
    "<reponame><repo_name><filename>",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "ﬁ ligature, ½ fraction, ² superscript, Ⅻ roman",
    "$100.00 €50 £20 ¥1000",
    "ctrl\x04\x07char and bell\x07 escape\x1b[0m del\x7f nul\x00",
    "!\x04! ?\x06? (bytes 0x04 and 0x06 have no token)",
    "\U00040000 plane-4 scalar (lead byte 0xF1 has no token)",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "a" * 300 + " " + "ab" * 200,
    " " * 257 + "x" + "\n" * 150 + "\t" * 140,
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==" * 3,
    "pneumonoultramicroscopicsilicovolcanoconiosisantidisestablishmentarianismfloccinaucinihilipilificationsupercalifragilisticexpialidocious",
    "                                                                ",
    PARAGRAPH,
]


def faithful_pre_tokenizer():
    from tokenizers import pre_tokenizers
    return pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])


def main():
    import tokenizers
    import transformers
    from transformers import AutoTokenizer

    gguf = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_GGUF
    if not os.path.isabs(gguf):
        gguf = os.path.join(REPO, gguf)
    tok = AutoTokenizer.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf))
    backend = tok.backend_tokenizer
    print("HF-from-GGUF pre-tokenizer:", backend.pre_tokenizer)
    has_digits = "Digits" in str(backend.pre_tokenizer)
    print("applies the individual-digit split:", has_digits)
    specials = {i: (t.content, t.lstrip, t.rstrip, t.normalized) for i, t in tok.added_tokens_decoder.items()}
    print("added tokens (content, lstrip, rstrip, normalized):", specials)

    def encode(s):
        return tok.encode(s, add_special_tokens=False)

    plain = [encode(s) for s in CASES]
    backend.pre_tokenizer = faithful_pre_tokenizer()
    print("golden pre-tokenizer:", backend.pre_tokenizer)
    cases, notes = [], []
    for s, p in zip(CASES, plain):
        ids = encode(s)
        decoded = tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        if decoded != s:
            print("note: HF drops bytes that have no token, so this does not round-trip:", repr(s))
        cases.append({"text": s, "ids": ids, "round_trip": decoded == s})
        if ids != p:
            notes.append({"text": s, "ids": ids, "hf_from_gguf_ids": p,
                          "golden_pieces": [t for t, _ in backend.pre_tokenizer.pre_tokenize_str(s)]})
    merges = json.loads(backend.to_str())["model"]["merges"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in merges]
    digit_pairs = [m for m in merges if any(a.isdigit() for a in m.split(" ")[0]) and any(b.isdigit() for b in m.split(" ")[1])]
    print("merges joining digit to digit (none means the vocabulary was trained with digits split):", digit_pairs[:10])

    for n in notes:
        print("differs from plain HF-from-GGUF:", repr(n["text"]), "golden", n["ids"], "plain", n["hf_from_gguf_ids"])
    print(f"{len(cases)} cases, {len(notes)} differ from the plain HF-from-GGUF pre-tokenizer")
    source = (
        f"Tests/Scripts/golden/make_tokenizer_battery.py on {os.path.basename(gguf)}: transformers "
        f"{transformers.__version__} (tokenizers {tokenizers.__version__}) AutoTokenizer.from_pretrained"
        "(gguf_file=...), encode(add_special_tokens=False), with the pre-tokenizer set to SmolLM2's "
        "Sequence([Digits(individual_digits=True), ByteLevel(add_prefix_space=False)]) because the "
        f"GGUF conversion {'keeps' if has_digits else 'drops'} the digit split (see notes)"
    )
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump({"source": source, "cases": cases, "notes": notes}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("wrote", os.path.relpath(OUT, REPO))


if __name__ == "__main__":
    main()
