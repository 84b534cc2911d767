"""Learning a WordPiece vocabulary from raw text.

Layout of a learned vocabulary (ids in this order):
  `[PAD] [UNK] [CLS] [SEP] [MASK]`   the special tokens, first as always (ids 0-4);
  `[unused0]` … `[unused{N-1}]`       `num_unused` reserved slots (ids 5 … 4+N), free
                                      for a later task's own tokens without a resize;
  the single characters, then the learned pieces, most frequent first.
Google's vocabularies interleave their `[unusedN]` with the special tokens ([PAD] at 0,
[unused0-98], [UNK] at 100…); ours keep the special tokens first and put the slots right
after them, so special-token ids do not depend on `num_unused`. Text never produces an
`[unusedN]` id: the word splitter cuts `[unused0]` typed in text into `[`, `unused0`, `]`.
"""

import collections
import os

import tensorflow as tf
from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

from keras_bert_app import names
from keras_bert_app.text.tokenizer import BertTokenizer

_BATCH_LINES = 4096
UNUSED_TOKEN = "[unused{}]"
_JOINER = "##"
# The threshold search stops once the learner's vocabulary is this close to the size.
_CLOSE_ENOUGH = 0.99


def unused_tokens(num_unused):
    """`[unused0]` … `[unused{num_unused-1}]`, Google's names for reserved slots."""
    return [UNUSED_TOKEN.format(i) for i in range(num_unused)]


def count_words(input_files, lower_case):
    """Counts the words of Google's BasicTokenizer (our in-graph one) in text files."""
    # Any vocabulary with the special tokens will do: only the word split is used.
    splitter = BertTokenizer(list(names.SPECIAL_TOKENS), lower_case=lower_case,
                             ascii_fast_path=False)
    split = tf.function(splitter.split_words)
    counts = collections.Counter()
    for path in input_files:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Input file {path} does not exist.")
        lines = tf.data.TextLineDataset(path).batch(_BATCH_LINES)
        for batch in lines:
            words = split(batch).flat_values.numpy()
            counts.update(w.decode("utf-8") for w in words)
    return counts


def learn_vocab(input_files, vocab_size, lower_case, num_unused=0, **kwargs):
    """A WordPiece vocabulary of at most `vocab_size` tokens learned from text files.

    Words are split exactly as the tokenizer will split them (same casing, accents,
    punctuation and CJK rules); `learn_vocab_from_counts` then picks the pieces.
    """
    counts = count_words(input_files, lower_case)
    if not counts:
        raise ValueError(f"No words in {list(input_files)}; cannot learn a vocabulary.")
    return learn_vocab_from_counts(counts, vocab_size, num_unused=num_unused, **kwargs)


def learn_vocab_from_counts(word_counts, vocab_size, num_unused=0, max_token_length=50,
                            max_unique_chars=1000, num_iterations=4,
                            max_input_tokens=5_000_000):
    """Exactly `vocab_size` tokens (the layout of this module's docstring), or every
    piece the corpus has when it has fewer.

    `vocab_size` counts everything: special tokens, `[unusedN]` slots, the alphabet
    (each kept character and its `##` form, so only characters outside the alphabet
    become `[UNK]`) and the learned pieces. tensorflow-text's BERT learner keeps the
    pieces seen at least `thresh` times; its own search over `thresh` treats the size as
    a target that it may overshoot (8000 asked gave 11,521 on tinyshakespeare: every
    threshold of 2 or more gave 7,405 or fewer). Here the search finds the lowest
    threshold whose vocabulary fits (or one whose vocabulary is within 1% of the size)
    and keeps that vocabulary whole, alphabet included; the room left is filled with
    the most frequent pieces that a lower threshold learned beyond it (the learner's
    ranking: count, then alphabetical).

    Args:
        word_counts: {word: count}, words as the tokenizer's word splitter yields them.
        vocab_size: the largest number of tokens.
        num_unused: `[unusedN]` slots, counted inside `vocab_size`.
        max_token_length: longer words are not learned from.
        max_unique_chars: the largest alphabet; words with rarer characters are not
            learned from (those characters become `[UNK]`).
    """
    vocab_size, num_unused = int(vocab_size), int(num_unused)
    if num_unused < 0:
        raise ValueError(f"num_unused={num_unused} must be 0 or more.")
    reserved = list(names.SPECIAL_TOKENS) + unused_tokens(num_unused)
    params = learner.Params(
        upper_thresh=None, lower_thresh=1, num_iterations=num_iterations,
        max_input_tokens=max_input_tokens, max_token_length=max_token_length,
        max_unique_chars=max_unique_chars, vocab_size=vocab_size, slack_ratio=0.0,
        include_joiner_token=True, joiner=_JOINER, reserved_tokens=reserved)
    # The learner's own input filtering (as its `learn` does): too long or reserved
    # words out, then words with characters outside the alphabet.
    words = learner.get_input_words(dict(word_counts).items(), set(reserved),
                                    max_token_length)
    allowed = learner.get_allowed_chars(words, max_unique_chars)
    words = learner.filter_input_words(words, allowed, max_input_tokens)
    if not words:
        raise ValueError(f"No word of at most max_token_length={max_token_length} "
                         "characters to learn a vocabulary from.")
    chars = learner.extract_char_tokens(words)
    alphabet = chars | {_JOINER + c for c in chars}
    smallest = len(reserved) + len(alphabet)
    if vocab_size < smallest:
        raise ValueError(
            f"vocab_size={vocab_size} cannot hold the {len(names.SPECIAL_TOKENS)} special "
            f"tokens, num_unused={num_unused} [unusedN] slots and the {len(chars)} "
            f"characters of the corpus with their ## forms ({2 * len(chars)} tokens): it "
            f"must be at least {smallest}. Raise vocab_size, or lower max_unique_chars "
            f"(now {max_unique_chars}) to keep fewer characters.")

    vocabs = {}

    def learned(thresh):  # the learner's vocabulary of the pieces seen >= thresh times
        if thresh not in vocabs:
            vocabs[thresh] = learner.learn_with_thresh(words, thresh, params)
        return vocabs[thresh]

    fits, too_big = _search(lambda t: len(learned(t)), vocab_size,
                            highest=max(count for _, count in words))
    if fits is not None:
        tokens = learned(fits)
    else:  # even the highest threshold (the top word count) learns too much
        tokens = learner.generate_final_vocabulary(reserved, chars, dict.fromkeys(alphabet, 1))
    if too_big is not None:  # room left: the most frequent of the next pieces
        have = set(tokens)
        more = [t for t in learned(too_big) if t not in have]
        tokens = tokens + more[:vocab_size - len(tokens)]
    if tokens[:len(reserved)] != reserved:  # the learner puts reserved tokens first
        raise AssertionError(f"learner reordered the reserved tokens: {tokens[:10]}")
    if len(tokens) > vocab_size or len(set(tokens)) != len(tokens):
        raise AssertionError(f"{len(tokens)} tokens for vocab_size={vocab_size}")
    return tokens


def _search(size, vocab_size, highest):
    """Thresholds `(fits, too_big)`: `size(fits) <= vocab_size < size(too_big)`, one
    apart or with `size(fits)` within `_CLOSE_ENOUGH` of `vocab_size` (the room left is
    filled from `too_big`'s vocabulary, always larger by more than that room).
    `too_big` is None when threshold 1 fits, `fits` None when `highest` does not.

    Doubling from 1, then bisecting: about 2·log2(threshold) calls, each a learner run
    over the corpus. A vocabulary large for its corpus has a small threshold (8000 on
    tinyshakespeare: 2 runs, where bisecting [1, highest] would take 15).
    """
    too_big, fits = None, 1
    while size(fits) > vocab_size:
        too_big = fits
        if fits >= highest:
            return None, too_big
        fits = min(2 * fits, highest)
    while (too_big is not None and fits - too_big > 1
           and size(fits) < _CLOSE_ENOUGH * vocab_size):
        middle = (too_big + fits) // 2
        if size(middle) <= vocab_size:
            fits = middle
        else:
            too_big = middle
    return fits, too_big


def write_vocab(tokens, path):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for token in tokens:
            f.write(token + "\n")
