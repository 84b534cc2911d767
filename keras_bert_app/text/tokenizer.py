"""In-graph BERT tokenizer reproducing Google's `tokenization.py` token for token."""

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from keras_bert_app import names
from keras_bert_app.text import unicode_tables
from keras_bert_app.text.vocab import load_vocab, special_token_ids

# google-research/bert tokenization.py: longer words become [UNK].
MAX_CHARS_PER_WORD = 200
# Strings the fast path handles exactly: printable ASCII.
_ASCII = "[ -~]*"


class BertTokenizer(tf.Module):
    """BasicTokenizer + WordPiece in the TensorFlow graph.

    Reproduces Google's `FullTokenizer`: deletes control characters, U+0000 and U+FFFD
    (and undecodable bytes), treats whitespace as separators, splits CJK ideographs and
    punctuation into words of their own, lower-cases with NFD accent stripping when
    `lower_case`, then splits each word greedily longest-match-first into WordPiece
    pieces (`##` continuations); a word longer than `max_chars_per_word` characters, or
    one that cannot be matched, becomes `[UNK]`. The character tables come from Python's
    `unicodedata`, the same source Google's code reads.

    Works on string tensors of any batch size inside `tf.function` and
    `tf.data.Dataset.map`, and exports in SavedModels.

    Strings of printable ASCII only (most real text) take a fast path: ASCII
    lower-casing, then tensorflow-text's end-to-end `FastWordpieceTokenizer`, whose
    built-in BERT pre-tokenization is exactly Google's on that alphabet (spaces
    separate, every ASCII punctuation mark is a word, a byte limit equal to the
    character limit). Every other string takes the exact code-point path. The tests
    check that both paths agree. The exact path's graph is kept compact (~600 nodes
    with the dispatch and packing, from ~1,100): `tf.data` instantiates a map function
    anew for every iterator (each epoch, `evaluate`, `predict`), at a cost that grows
    with its graph whether or not a branch runs (~0.13 s, from ~0.3 s, on the 2-core
    dev machine).

    Args:
        vocab: path of `vocab.txt` or a list of tokens (id = position).
        lower_case: Google's `do_lower_case`.
        max_chars_per_word: longer words become `[UNK]`.
        ascii_fast_path: use the fast path for printable-ASCII strings.

    Example:
    >>> tokenizer = BertTokenizer("vocab.txt", lower_case=True)
    >>> tokenizer.tokenize(tf.constant(["Hello, world!"]))  # [batch, words, pieces]
    """

    def __init__(self, vocab, lower_case=True, max_chars_per_word=MAX_CHARS_PER_WORD,
                 ascii_fast_path=True, name=None):
        super().__init__(name=name)
        source = vocab if isinstance(vocab, str) else "the vocabulary"
        tokens = load_vocab(vocab) if isinstance(vocab, str) else list(vocab)
        self._tokens = _TokenList(tokens)
        self.special_ids = special_token_ids(tokens, source)
        self.lower_case = bool(lower_case)
        self.max_chars_per_word = int(max_chars_per_word)
        self.ascii_fast_path = bool(ascii_fast_path)

        keys, packed, values = unicode_tables.normalization_table(self.lower_case)
        self._normalization = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, packed), default_value=-1)
        # Variables, not constants: a SavedModel stores a variable once, but a constant
        # once per traced function that captures it.
        self._normalized_values = _frozen(values, "normalized_values")
        self._punctuation = _frozen(unicode_tables.punctuation_codepoints(), "punctuation")
        self._cased = _frozen(unicode_tables.cased_codepoints(), "cased")
        # A word of at most max_chars_per_word characters has at most 4 bytes each.
        self._wordpiece = tf_text.FastWordpieceTokenizer(
            vocab=self.vocab, suffix_indicator="##",
            max_bytes_per_word=4 * self.max_chars_per_word,
            token_out_type=tf.int32, unknown_token=names.UNK_TOKEN,
            no_pretokenization=True)
        # The same for its ~1 MB model flatbuffer (tensorflow-text keeps it in `_model`
        # and passes it to its ops, which read a variable as well as a tensor).
        self._wordpiece._model = _frozen(self._wordpiece._model, "wordpiece_model")
        if self.ascii_fast_path:
            # On printable ASCII, lower-casing is `tf.strings.lower` (NFD accent
            # stripping has nothing to strip), so tensorflow-text's separate
            # normaliser op (FastBertTokenizer's first half) is skipped: ~15% faster.
            self._ascii = tf_text.FastWordpieceTokenizer(
                vocab=tokens, suffix_indicator="##",
                max_bytes_per_word=self.max_chars_per_word, token_out_type=tf.int32,
                unknown_token=names.UNK_TOKEN, no_pretokenization=False)
            self._ascii._model = _frozen(self._ascii._model, "ascii_wordpiece_model")
            # Which ids continue a word: regroups the fast path's flat pieces by word.
            self._is_suffix = _frozen(np.array([t.startswith("##") for t in tokens]),
                                      "is_suffix")

    @classmethod
    def from_text_config(cls, vocab_file, text_config):
        """The tokenizer over `vocab_file` that a `TextConfig` describes (casing,
        longest word): how every stage of a model tokenizes alike."""
        return cls(vocab_file, lower_case=text_config.do_lower_case,
                   max_chars_per_word=text_config.max_chars_per_word)

    @classmethod
    def from_model_dir(cls, directory):
        """The tokenizer of a model directory: its `vocab.txt` with the settings of
        its `text_config.json` (checked against the vocabulary)."""
        import os

        from keras_bert_app.files import model_dir_files
        from keras_bert_app.text.text_config import TextConfig

        vocab_file, text_file = model_dir_files(directory, names.VOCAB_FILE,
                                                names.TEXT_CONFIG_FILE)
        text_config = TextConfig.from_json_file(os.fspath(text_file))
        text_config.check_vocab(vocab_file)
        return cls.from_text_config(vocab_file, text_config)

    @property
    def vocab(self):
        """The tokens, id = position."""
        return self._tokens.tokens

    @property
    def vocab_size(self):
        return len(self.vocab)

    def get_special_tokens_dict(self):
        """TF Hub's special-token ids, as int32 scalars."""
        ids = self.special_ids
        return {
            "vocab_size": tf.constant(len(self.vocab), tf.int32),
            "start_of_sequence_id": tf.constant(ids[names.CLS_TOKEN], tf.int32),
            "end_of_segment_id": tf.constant(ids[names.SEP_TOKEN], tf.int32),
            "padding_id": tf.constant(ids[names.PAD_TOKEN], tf.int32),
            "mask_id": tf.constant(ids[names.MASK_TOKEN], tf.int32),
        }

    def tokenize(self, text):
        """Strings `[batch]` → int32 ids, RaggedTensor `[batch, words, pieces]`."""
        return self._dispatch(
            text, lambda t: self._ascii_words(self._ascii_pieces(t)),
            lambda t: self._wordpieces(self._words(t), with_offsets=False))

    def tokenize_pieces(self, text):
        """Strings `[batch]` → int32 ids, RaggedTensor `[batch, pieces]` (no word
        grouping; what packing needs)."""
        return self._dispatch(
            text, self._ascii_pieces,
            lambda t: self._wordpieces(self._words(t), with_offsets=False).merge_dims(1, 2))

    def split_words(self, text):
        """Strings `[batch]` → normalised words, a string RaggedTensor `[batch, words]`.

        The BasicTokenizer half: what WordPiece then splits (and what a vocabulary is
        learned from).
        """
        words = self._words(check_strings(text))
        return tf.RaggedTensor.from_value_rowids(
            tf.strings.unicode_encode(words["chars"], "UTF-8"), words["word_rows"],
            nrows=words["batch_size"])

    def tokenize_with_offsets(self, text):
        """Like `tokenize`, plus byte offsets of each piece in the input string.

        Returns `(ids, starts, limits)`, each `[batch, words, pieces]`; a piece covers
        `text[starts:limits]` of the original bytes (a piece of a lower-cased or
        accent-stripped character covers that whole character).
        """
        words = self._words(check_strings(text))
        return self._wordpieces(words, with_offsets=True)

    # ------------------------------------------------------------------ internals

    def _dispatch(self, text, ascii_fn, exact_fn):
        """Printable-ASCII rows through `ascii_fn`, the others through `exact_fn`, in
        the original row order. An all-ASCII batch skips the exact path entirely."""
        text = check_strings(text)
        if not self.ascii_fast_path:
            return exact_fn(text)

        def mixed():
            is_ascii = tf.strings.regex_full_match(text, _ASCII)
            ascii_rows = tf.where(is_ascii)[:, 0]
            other_rows = tf.where(tf.logical_not(is_ascii))[:, 0]
            merged = tf.concat([ascii_fn(tf.gather(text, ascii_rows)),
                                exact_fn(tf.gather(text, other_rows))], axis=0)
            order = tf.argsort(tf.concat([ascii_rows, other_rows], axis=0))
            return tf.gather(merged, order)

        # One regex over the joined batch is much cheaper than one per row.
        all_ascii = tf.strings.regex_full_match(tf.strings.reduce_join(text), _ASCII)
        return tf.cond(all_ascii, lambda: ascii_fn(text), mixed)

    def _ascii_pieces(self, text):
        """Printable-ASCII strings `[batch]` → ids `[batch, pieces]`."""
        if self.lower_case:
            text = tf.strings.lower(text)  # ASCII only: no encoding given
        return self._ascii.tokenize(text)

    def _ascii_words(self, pieces):
        """Flat pieces `[batch, pieces]` → `[batch, words, pieces]`: a piece that is not
        a `##` continuation starts a word (on ASCII text a first piece never is one)."""
        flat = pieces.flat_values
        starts = tf.logical_not(tf.gather(self._is_suffix, flat))
        word_of_piece = tf.cumsum(tf.cast(starts, tf.int64)) - 1
        words = tf.RaggedTensor.from_value_rowids(
            flat, word_of_piece, nrows=tf.reduce_sum(tf.cast(starts, tf.int64)),
            validate=False)
        word_rows = tf.boolean_mask(_value_rowids(pieces), starts)
        return tf.RaggedTensor.from_value_rowids(words, word_rows, nrows=pieces.nrows(),
                                                 validate=False)

    def _words(self, text):
        text = check_strings(text)
        # Undecodable bytes become U+FFFD, which the tables delete (Google's code
        # decodes with errors="ignore").
        chars, char_starts = tf.strings.unicode_decode_with_offsets(
            text, "UTF-8", errors="replace", replacement_char=0xFFFD)
        cps = chars.flat_values  # [chars]
        char_rows = _value_rowids(chars)  # [chars]
        char_starts = tf.cast(char_starts.flat_values, tf.int32)
        char_limits = char_starts + _utf8_length(cps)
        if self.lower_case:
            cps = self._final_sigma(cps, char_rows)

        # Normalise: each character becomes 0..k characters.
        packed = self._normalization.lookup(tf.cast(cps, tf.int64))
        mapped = packed >= 0
        out_lengths = tf.where(mapped, tf.cast(packed % 8, tf.int32), 1)
        out_starts = tf.where(mapped, tf.cast(packed // 8, tf.int32), 0)
        table_index = tf.ragged.range(out_starts, out_starts + out_lengths).flat_values
        origin = _repeat_range(out_lengths)  # [out]: the character each comes from
        out_cps = tf.where(tf.gather(mapped, origin),
                           tf.gather(self._normalized_values, table_index),
                           tf.gather(cps, origin))
        out_rows = tf.gather(char_rows, origin)

        # Classify and group into words: a run of word characters, or one punctuation
        # mark or CJK ideograph; spaces separate.
        is_space = tf.equal(out_cps, unicode_tables.SPACE)
        is_single = tf.logical_or(self._is_punctuation(out_cps), _is_cjk(out_cps))
        is_word_char = tf.logical_not(tf.logical_or(is_space, is_single))
        previous_is_word_char = tf.logical_and(
            _shift_right(is_word_char, False),
            tf.equal(_shift_right(out_rows, -1), out_rows))
        starts_word = tf.logical_or(
            is_single, tf.logical_and(is_word_char, tf.logical_not(previous_is_word_char)))
        kept = tf.where(tf.logical_not(is_space))[:, 0]
        kept_starts = tf.gather(starts_word, kept)
        word_of_char = tf.cumsum(tf.cast(kept_starts, tf.int32)) - 1
        num_words = tf.reduce_sum(tf.cast(kept_starts, tf.int32))
        first_chars = tf.boolean_mask(kept, kept_starts)

        return dict(
            batch_size=tf.shape(text, out_type=tf.int64)[0],
            chars=tf.RaggedTensor.from_value_rowids(
                tf.gather(out_cps, kept), word_of_char, nrows=num_words, validate=False),
            word_rows=tf.gather(out_rows, first_chars),
            origin=tf.gather(origin, kept),
            char_starts=char_starts, char_limits=char_limits)

    def _wordpieces(self, words, with_offsets):
        chars = words["chars"]  # [words, chars], normalised code points
        strings = tf.strings.unicode_encode(chars, "UTF-8")  # [words]
        too_long = chars.row_lengths() > self.max_chars_per_word
        strings = tf.where(too_long, names.UNK_TOKEN, strings)

        def by_row(pieces):  # [words, pieces] -> [batch, words, pieces]
            return tf.RaggedTensor.from_value_rowids(pieces, words["word_rows"],
                                                     nrows=words["batch_size"],
                                                     validate=False)

        if not with_offsets:
            return by_row(self._wordpiece.tokenize(strings))

        ids, piece_starts, piece_limits = self._wordpiece.tokenize_with_offsets(strings)
        # Byte positions of every normalised character in the concatenation of all
        # words; a piece's byte range inside its word maps to the characters at its
        # ends, and through them to the original characters' bytes.
        char_bytes = _utf8_length(chars.flat_values)
        char_ends = tf.cumsum(char_bytes)
        char_begins = char_ends - char_bytes
        word_begin = tf.gather(char_begins, chars.row_starts())  # [words]
        word_bytes = tf.gather(char_ends, chars.row_limits() - 1) - word_begin
        piece_word = ids.value_rowids()
        long_piece = tf.gather(too_long, piece_word)
        begin = tf.gather(word_begin, piece_word)
        piece_start = begin + tf.where(long_piece, 0, tf.cast(piece_starts.flat_values, tf.int32))
        piece_limit = begin + tf.where(long_piece, tf.gather(word_bytes, piece_word),
                                       tf.cast(piece_limits.flat_values, tf.int32))
        first_char = tf.searchsorted(char_begins, piece_start, side="left")
        last_char = tf.searchsorted(char_ends, piece_limit, side="left")
        origin = words["origin"]
        starts = tf.gather(words["char_starts"], tf.gather(origin, first_char))
        limits = tf.gather(words["char_limits"], tf.gather(origin, last_char))
        return (by_row(ids), by_row(ids.with_flat_values(starts)),
                by_row(ids.with_flat_values(limits)))

    def _is_punctuation(self, cps):
        index = _search(self._punctuation, cps)
        index = tf.minimum(index, tf.size(self._punctuation) - 1)
        return tf.equal(tf.gather(self._punctuation, index), cps)

    def _is_cased(self, cps):
        index = tf.minimum(_search(self._cased, cps), tf.size(self._cased) - 1)
        return tf.equal(tf.gather(self._cased, index), cps)

    def _final_sigma(self, cps, rows):
        """Python's `str.lower` maps Σ to ς at the end of a word: after a cased letter
        and not before one (neighbours only; Python also skips case-ignorable marks).
        `cps`, `rows`: each character's code point and row `[chars]`."""
        before = tf.logical_and(self._is_cased(_shift_right(cps, 0)),
                                tf.equal(_shift_right(rows, -1), rows))
        after = tf.logical_and(self._is_cased(_shift_left(cps, 0)),
                               tf.equal(_shift_left(rows, -1), rows))
        final = tf.logical_and(tf.equal(cps, unicode_tables.CAPITAL_SIGMA),
                               tf.logical_and(before, tf.logical_not(after)))
        return tf.where(final, unicode_tables.FINAL_SIGMA, cps)


def check_strings(text):
    """A string tensor as a vector `[batch]`; a clear error for another dtype."""
    text = tf.convert_to_tensor(text)
    if text.dtype != tf.string:
        raise TypeError(f"BertTokenizer takes a string tensor, got {text.dtype.name}.")
    if text.shape.rank != 1:
        text = tf.reshape(text, [-1])
    return text


class _TokenList:
    """Holds the token list outside tf.Module's tracking, which would otherwise wrap
    and walk its ~30k strings at every save (adding ~15 s to an export)."""

    def __init__(self, tokens):
        self.tokens = tokens


def whitespace_token_offsets(text):
    """The whitespace-separated tokens of each string, before punctuation and CJK
    splitting: Google's `whitespace_tokenize` of the cleaned text (what a CoNLL line
    holds), with characters the tokenizer deletes (controls, zero-width, U+FFFD) kept
    inside the token they stand in. The separators are the ones `BertTokenizer`'s words
    never cross, so every piece lies inside exactly one token.

    Args:
        text: string `[batch]`.

    Returns:
        `(starts, limits)`: int64 `[batch, (tokens)]` byte offsets; a token is
        `text[starts:limits]` (whole characters; an undecodable byte is one).
    """
    text = check_strings(text)
    chars, char_starts = tf.strings.unicode_decode_with_offsets(
        text, "UTF-8", errors="replace", replacement_char=0xFFFD)  # [batch, (chars)]
    rows = chars.value_rowids()  # [chars]
    starts = char_starts.flat_values  # [chars]
    # A character ends where the next one of its row starts (not start + its UTF-8
    # length: an undecodable byte decodes to U+FFFD, 3 bytes, but covers 1).
    same_row_next = tf.equal(_shift_left(rows, -1), rows)
    row_bytes = tf.gather(tf.strings.length(text), rows)
    limits = tf.where(same_row_next, _shift_left(starts, 0), tf.cast(row_bytes, tf.int64))
    separators = tf.constant(unicode_tables.separator_codepoints())
    cps = chars.flat_values
    index = tf.minimum(tf.searchsorted(separators, cps), tf.size(separators) - 1)
    in_token = tf.not_equal(tf.gather(separators, index), cps)  # [chars]
    same_row_previous = tf.equal(_shift_right(rows, -1), rows)
    first = tf.logical_and(in_token, tf.logical_not(tf.logical_and(
        same_row_previous, _shift_right(in_token, False))))
    last = tf.logical_and(in_token, tf.logical_not(tf.logical_and(
        same_row_next, _shift_left(in_token, False))))
    token_rows = tf.boolean_mask(rows, first)
    batch = tf.shape(text, out_type=tf.int64)[0]
    return (tf.RaggedTensor.from_value_rowids(tf.boolean_mask(starts, first), token_rows,
                                              nrows=batch),
            tf.RaggedTensor.from_value_rowids(tf.boolean_mask(limits, last), token_rows,
                                              nrows=batch))


def _repeat_range(lengths):
    """`tf.repeat(tf.range(n), lengths)`: for each of the `sum(lengths)` positions, the
    segment it falls in (a search over the segments' ends). ~15 ops where `tf.repeat`
    builds ~50: every op of a function is processed again each time `tf.data`
    instantiates it (every iterator), and run on every call."""
    ends = tf.cumsum(lengths)
    return _search(ends, tf.range(tf.reduce_sum(lengths), dtype=lengths.dtype), "right")


def _value_rowids(ragged):
    """`ragged.value_rowids()` of a `[rows, (values)]` RaggedTensor, in ~15 ops instead
    of ~50 (see `_repeat_range`)."""
    splits = ragged.row_splits
    return _search(splits[1:], tf.range(splits[-1], dtype=splits.dtype), "right")


def _search(sorted_values, values, side="left"):
    """`tf.searchsorted` of integer vectors (indices of `values`' dtype) on the raw op,
    which `tf.searchsorted` wraps in ~12 shape ops for N-D inputs."""
    search = tf.raw_ops.LowerBound if side == "left" else tf.raw_ops.UpperBound
    found = search(sorted_inputs=tf.expand_dims(sorted_values, 0),
                   values=tf.expand_dims(values, 0), out_type=values.dtype)  # [1, values]
    return tf.reshape(found, [-1])


def _frozen(value, name):
    return tf.Variable(value, trainable=False, name=name)


def _utf8_length(cps):
    return (1 + tf.cast(cps >= 0x80, tf.int32) + tf.cast(cps >= 0x800, tf.int32)
            + tf.cast(cps >= 0x10000, tf.int32))


def _is_cjk(cps):
    result = tf.zeros_like(cps, tf.bool)
    for low, high in unicode_tables.CJK_RANGES:
        result = tf.logical_or(result, tf.logical_and(cps >= low, cps <= high))
    return result


def _shift_right(values, fill):
    """values[i-1] at i (a flat vector), `fill` at 0."""
    shifted = tf.concat([tf.constant([fill], values.dtype), values], axis=0)
    return tf.slice(shifted, [0], tf.shape(values))


def _shift_left(values, fill):
    """values[i+1] at i (a flat vector), `fill` at the end."""
    shifted = tf.concat([values, tf.constant([fill], values.dtype)], axis=0)
    return tf.slice(shifted, [1], tf.shape(values))
