"""Hypothesis strategies for hostile text, and the invariants every answer must keep.

Texts are byte strings (what a serving request carries): UTF-8 of random Unicode of
every category but surrogates (Cc, Cf, Zs, Mn, Co, Cn, CJK, emoji…), vocabulary
words so that real pieces appear, and invalid UTF-8 spliced in. The checks compare
with the plain-Python port of Google's tokenizer (tests/text/reference_tokenizer.py),
which decodes bytes with errors="ignore" as Google's code does.
"""

import bisect
import functools
import unicodedata

import numpy as np
from hypothesis import strategies as st

from keras_bert_app import names
from tests.helpers import SHAKESPEARE_VOCAB
from tests.text import reference_tokenizer as ref

# Characters tokenizers get wrong: controls, zero-width and bidi marks, odd spaces,
# combining marks, case oddities, CJK, emoji sequences, private use, unassigned.
SPECIAL_CHARS = (
    [chr(c) for c in range(0x20)] + ["\x7f", "\x85", "\xa0", "\xad"]
    + list("\u0301\u0308\u200b\u200c\u200d\u200e\u200f\u2028\u2029\u202e\u2060\ufeff")
    + list("\u3000\u2003\u202f\ufffd\ufffe\uffff\ue000\U000f0000\u0378")
    + list("ΣσςßẞİıǅﬁＡ！中文日本語한국😀🏽🇩🇪𝐁\U00020000\u2f00"))
# Sequences of several code points: joined emoji, base + combining mark.
SEQUENCES = ("👨\u200d👩\u200d👧", "👍🏽", "e\u0301", "x\u0308", "ΣΑΣ", "İstanbul")
# Byte sequences no UTF-8 decoder accepts: lone continuation and lead bytes,
# truncated sequences, an encoded surrogate, a code point above U+10FFFF, overlong.
INVALID_UTF8 = (b"\x80", b"\xbf", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xff",
                b"\xfe", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\xe0\x80\xaf")
# Google's BasicTokenizer: these (and category Zs) separate words.
WHITESPACE = " \t\n\r"


@functools.lru_cache(maxsize=None)
def vocab():
    with open(SHAKESPEARE_VOCAB, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


@functools.lru_cache(maxsize=None)
def reference():
    return ref.FullTokenizer(SHAKESPEARE_VOCAB, do_lower_case=True)


def _words():
    return [t[2:] if t.startswith("##") else t for t in vocab()
            if not (t.startswith("[") and t.endswith("]"))]


def any_char():
    """Any code point but a surrogate, or one of SPECIAL_CHARS."""
    return st.one_of(st.characters(exclude_categories=("Cs",)),
                     st.sampled_from(SPECIAL_CHARS))


def texts(max_fragments=12):
    """Unicode strings: vocabulary words, random characters and separators mixed."""
    fragment = st.one_of(st.sampled_from(_words()),
                         st.text(alphabet=any_char(), max_size=6),
                         st.sampled_from(SEQUENCES),
                         st.sampled_from([" ", "  ", "\t", "\n", ".", ",", " - "]))
    return st.lists(fragment, max_size=max_fragments).map("".join)


def byte_texts(max_fragments=12):
    """What a request's string tensor holds: UTF-8 texts, often with invalid bytes
    spliced in, or raw random bytes."""
    utf8 = texts(max_fragments).map(lambda t: t.encode("utf-8"))
    junk = st.one_of(st.sampled_from(INVALID_UTF8), st.binary(min_size=1, max_size=3))
    spliced = st.builds(lambda a, bad, b: a + bad + b, utf8, junk, utf8)
    return st.one_of(utf8, utf8, spliced, st.binary(max_size=24))


def batches(max_size=6, max_fragments=12):
    """A batch of request strings (0 to max_size rows)."""
    return st.lists(byte_texts(max_fragments), max_size=max_size)


def as_text(value):
    """The Python str a byte string is, or None when it is not valid UTF-8."""
    try:
        return value.decode("utf-8") if isinstance(value, bytes) else value
    except UnicodeDecodeError:
        return None


# ------------------------------------------------------------------ invariants


def reference_ids(text):
    """Google's word-piece ids of `text` (bytes: undecodable bytes ignored)."""
    return reference().convert_tokens_to_ids(reference().tokenize(text))


def expected_packing(segments, seq_length):
    """Google's packing of one example: `[CLS] A [SEP] (B [SEP])`, pairs cut by
    `_truncate_seq_pair` (pop from the longer, B on ties); (ids, type ids)."""
    pieces = [list(reference_ids(s)) for s in segments]
    if len(pieces) == 1:
        pieces[0] = pieces[0][:seq_length - 2]
    else:
        a, b = pieces
        while len(a) + len(b) > seq_length - 3:
            (a if len(a) > len(b) else b).pop()
    special = {t: i for i, t in enumerate(vocab()) if t.startswith("[")}
    ids, types = [special[names.CLS_TOKEN]], [0]
    for segment_index, segment in enumerate(pieces):
        ids += segment + [special[names.SEP_TOKEN]]
        types += [segment_index] * (len(segment) + 1)
    return ids, types


def check_packed(outputs, segments, seq_length):
    """The three encoder inputs of `segments` (1 or 2 lists of byte strings, one per
    example) packed to `seq_length`: shapes, [CLS]/[SEP], ids < vocab size, mask
    and type ids consistent, and exactly Google's ids."""
    batch = len(segments[0])
    assert sorted(outputs) == sorted(names.ENCODER_INPUTS), sorted(outputs)
    for key in names.ENCODER_INPUTS:
        assert outputs[key].dtype == np.int32, (key, outputs[key].dtype)
        assert outputs[key].shape == (batch, seq_length), (key, outputs[key].shape)
    ids, mask = outputs[names.INPUT_WORD_IDS], outputs[names.INPUT_MASK]
    types = outputs[names.INPUT_TYPE_IDS]
    assert ((ids >= 0) & (ids < len(vocab()))).all(), ids
    cls_id, sep_id = vocab().index(names.CLS_TOKEN), vocab().index(names.SEP_TOKEN)
    for row in range(batch):
        length = int(mask[row].sum())
        assert (mask[row] == (np.arange(seq_length) < length)).all(), mask[row]  # 1s, 0s
        assert length >= len(segments) + 1
        assert ids[row, 0] == cls_id and ids[row, length - 1] == sep_id, ids[row]
        assert (ids[row, length:] == 0).all() and (types[row, length:] == 0).all()
        seps = np.flatnonzero(ids[row, :length] == sep_id)
        assert len(seps) == len(segments), (ids[row], seps)
        # Type 0 through the first [SEP], then 1 through the second.
        expected_types = np.zeros(length, np.int32)
        if len(segments) == 2:
            expected_types[seps[0] + 1:] = 1
        assert (types[row, :length] == expected_types).all(), types[row]
        want_ids, want_types = expected_packing([s[row] for s in segments], seq_length)
        assert ids[row, :length].tolist() == want_ids, (
            [s[row] for s in segments], ids[row, :length].tolist(), want_ids)
        assert types[row, :length].tolist() == want_types


def check_classifier(outputs, batch, labels):
    """Single-label answers: probabilities `[batch, classes]` finite, in [0, 1],
    summing to 1; `label_id` its argmax; `label` that label's name."""
    assert sorted(outputs) == sorted([names.PROBABILITIES, names.LABEL_ID, names.LABEL])
    probabilities = outputs[names.PROBABILITIES]
    assert probabilities.dtype == np.float32
    assert probabilities.shape == (batch, len(labels))
    assert np.isfinite(probabilities).all() and (probabilities >= 0).all()
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    assert outputs[names.LABEL_ID].dtype == np.int32
    assert outputs[names.LABEL_ID].shape == (batch,)
    assert (outputs[names.LABEL_ID] == probabilities.argmax(-1)).all()
    assert outputs[names.LABEL].tolist() == [labels[i].encode()
                                             for i in outputs[names.LABEL_ID]]


def check_embedding(outputs, batch, hidden, normalized):
    assert sorted(outputs) == [names.EMBEDDING]
    vectors = outputs[names.EMBEDDING]
    assert vectors.dtype == np.float32 and vectors.shape == (batch, hidden)
    assert np.isfinite(vectors).all()
    if normalized:
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=-1), 1.0, atol=1e-5)


def check_squad(outputs, questions, contexts):
    """v2.0 answers: an answer is `context[start_char:end_char]` (code points), a
    non-empty exact substring; no answer is `""` at -1, -1; scores finite."""
    batch = len(contexts)
    expected_keys = [names.ANSWER, names.START_CHAR, names.END_CHAR, names.SCORE,
                     names.HAS_ANSWER, names.NULL_ODDS]
    assert sorted(outputs) == sorted(expected_keys), sorted(outputs)
    for key in expected_keys:
        assert outputs[key].shape == (batch,), (key, outputs[key].shape)
    assert outputs[names.START_CHAR].dtype == np.int32
    assert outputs[names.END_CHAR].dtype == np.int32
    assert outputs[names.HAS_ANSWER].dtype == np.bool_
    assert np.isfinite(outputs[names.SCORE]).all(), outputs[names.SCORE]
    assert np.isfinite(outputs[names.NULL_ODDS]).all(), outputs[names.NULL_ODDS]
    for row in range(batch):
        answer = outputs[names.ANSWER][row]
        start, end = int(outputs[names.START_CHAR][row]), int(outputs[names.END_CHAR][row])
        context = contexts[row]
        if not outputs[names.HAS_ANSWER][row]:
            assert (answer, start, end) == (b"", -1, -1), (context, answer, start, end)
            continue
        assert answer and answer in context, (context, answer)
        text = as_text(context)
        if text is not None:  # character offsets are defined on valid UTF-8
            assert 0 <= start < end <= len(text), (context, start, end)
            assert text[start:end].encode("utf-8") == answer, (context, start, end, answer)
        assert reference_ids(answer), (context, answer)  # the span holds a piece


def whitespace_tokens(text):
    """Google's `whitespace_tokenize(_clean_text(text))` as spans of the original
    text: cleaning deletes U+0000, U+FFFD and controls (Cc, Cf but tab, newline, CR),
    turns whitespace (space, tab, newline, CR, Zs) into a space; `str.split()` then
    separates on what is left (so also U+2028/U+2029, but not the deleted U+001C):
    [(start, end)] in characters, deleted characters inside their token."""
    def separates(char):
        if char not in WHITESPACE and unicodedata.category(char) in ("Cc", "Cf"):
            return False  # deleted by cleaning
        return char in WHITESPACE or unicodedata.category(char) == "Zs" or char.isspace()

    spans, start = [], None
    for i, char in enumerate(text + " "):
        if separates(char):
            if start is not None:
                spans.append((start, i))
            start = None
        elif start is None:
            start = i
    return spans


def check_ner(outputs, texts, labels, exact_words=False):
    """Words: exact substrings at their offsets, in order, inside one whitespace
    token of the text; tags in the label set; entities `text[start:end]` spanning
    whole words. `exact_words`: also each word is a whole whitespace token (the
    tokens that hold a piece), as saved_models/README.md documents."""
    batch = len(texts)
    counts = outputs[names.NUM_WORDS]
    assert counts.dtype == np.int32 and counts.shape == (batch,)
    width = int(counts.max()) if batch else 0
    for key in (names.WORDS, names.TAGS, names.WORD_START_CHAR, names.WORD_END_CHAR):
        assert outputs[key].shape == (batch, width), (key, outputs[key].shape, width)
    entity_counts = outputs[names.NUM_ENTITIES]
    entity_width = int(entity_counts.max()) if batch else 0
    for key in (names.ENTITY_TEXT, names.ENTITY_TYPE, names.ENTITY_START_CHAR,
                names.ENTITY_END_CHAR):
        assert outputs[key].shape == (batch, entity_width), (key, outputs[key].shape)
    types = {label[2:].encode() for label in labels if label != "O"}
    for row in range(batch):
        n, m = int(counts[row]), int(entity_counts[row])
        words = outputs[names.WORDS][row]
        tags = outputs[names.TAGS][row]
        starts = outputs[names.WORD_START_CHAR][row]
        ends = outputs[names.WORD_END_CHAR][row]
        assert (words[n:] == b"").all() and (tags[n:] == b"").all()
        assert (starts[n:] == -1).all() and (ends[n:] == -1).all()
        assert all(tag.decode() in labels for tag in tags[:n]), tags
        # (Offsets are checked below for decodable texts; `in` is quadratic there.)
        if as_text(texts[row]) is None:
            assert all(word and word in texts[row] for word in words[:n]), (texts[row], words)
        entity_text = outputs[names.ENTITY_TEXT][row]
        entity_type = outputs[names.ENTITY_TYPE][row]
        entity_start = outputs[names.ENTITY_START_CHAR][row]
        entity_end = outputs[names.ENTITY_END_CHAR][row]
        assert (entity_text[m:] == b"").all() and (entity_type[m:] == b"").all()
        assert (entity_start[m:] == -1).all() and (entity_end[m:] == -1).all()
        assert all(t in types for t in entity_type[:m]), entity_type
        text = as_text(texts[row])
        if text is None:
            continue
        tokens = whitespace_tokens(text)
        token_starts = [a for a, _ in tokens]
        previous_end = 0
        for word, start, end in zip(words[:n], starts[:n], ends[:n]):
            assert previous_end <= start < end <= len(text), (text, starts, ends)
            assert text[start:end].encode("utf-8") == word, (text, word, start, end)
            # The token starting at or before the word (bisect: a megabyte text has
            # 200,000 words).
            a, b = tokens[bisect.bisect_right(token_starts, start) - 1]
            assert a <= start and end <= b, (text, word, (a, b))
            previous_end = end
        if exact_words:
            expected = [text[a:b] for a, b in tokens if reference_ids(text[a:b])]
            assert [w.decode("utf-8") for w in words[:n]] == expected, (text, words)
        word_starts, word_ends = set(starts[:n].tolist()), set(ends[:n].tolist())
        for phrase, start, end in zip(entity_text[:m], entity_start[:m], entity_end[:m]):
            assert start in word_starts and end in word_ends, (text, start, end)
            assert text[start:end].encode("utf-8") == phrase, (text, phrase, start, end)
