#!/usr/bin/env python3
"""Edge-case texts as JSON lines (stdout): whitespace runs, newlines, digits, contractions,
emoji/ZWJ, combining marks, Thai, CJK, RTL, control chars, odd spaces, added tokens inside
words, non-NFC input."""
import json
T = [
    "", " ", "  ", "\n", "\n\n\n", " \n ", "\t", "\t\t x", "\r\n", "a\r\nb\rc\n", "   leading", "trailing   ",
    "many     spaces   between", "x \n\n  y", "end with newline\n", " = Robert Boulter = \n",
    "0", "12", "123", "1234", "12345678901234567890", "3.14159", "1,000,000", "1e-10", "v2.0.1",
    "don't", "DON'T", "I'm", "you're", "we've", "they'll", "he'd", "it's", "O'Neil's", "'s", "''", "rock'n'roll",
    "\U0001F916\U0001F680", "\U0001F468\u200D\U0001F469\u200D\U0001F467", "\U0001F44D\U0001F3FD", "flags \U0001F1EB\U0001F1F7",
    "e\u0301", "cafe\u0301 na\u0131\u0308ve", "q\u0323\u0303", "\u1100\u1161\u11a8", "A\u030a\u0327",
    "โมเดลภาษาไทย", "日本語のテキスト", "中文测试，标点。", "한국어 텍스트", "שלום עולם", "مرحبا بالعالم", "Привет, мир!",
    "ctrl\x01\x02\x1b[0m\x7f", "nul\x00byte", "nbsp\u00a0here", "ideographic\u3000space", "en\u2002quad",
    "mongolian\u180evowel sep", "zero\u200bwidth", "line\u2028sep", "para\u2029sep", "\ufeffbom",
    "word<start_of_turn>word", "<bos>text", "x<eos>", "<|im_start|>user\nhi<|im_end|>", "a<think>b</think>c",
    "<|begin_of_text|>hello<|eot_id|>", "<s>hi</s>", "<unk>", "\u2581literal\u2581\u2581bar", "▁▁▁",
    "ﬁ ½ ＡＢＣ ①", "\u212bngstr\u00f6m", "\u017fs", "STRASSE stra\u00dfe", "\u0130stanbul",
    "mixed123abc!!!???...", "http://example.com/path?q=1&r=2#frag", "email@example.com", "#!/bin/sh\necho $HOME",
    "def f(x):\n\treturn x ** 2  # sq\n", "    indented\n        more\n", "a" * 300, "ab " * 100, "\U0010FFFF\U000E0001",
    "x" + " " * 50 + "\n" + "\t" * 20 + "y", ".!?" * 30,
]
for t in T:
    print(json.dumps({"text": t}))
