"""Learning a WordPiece vocabulary from raw text."""

import collections
import os

import tensorflow as tf
from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

from keras_bert_app import names
from keras_bert_app.text.tokenizer import BertTokenizer

_BATCH_LINES = 4096


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


def learn_vocab(input_files, vocab_size, lower_case, max_token_length=50,
                max_unique_chars=1000, num_iterations=4):
    """A WordPiece vocabulary of at most `vocab_size` tokens, special tokens first.

    Words are split exactly as the tokenizer will split them (same casing, accents,
    punctuation and CJK rules), then tensorflow-text's BERT vocabulary learner picks
    the pieces. Every character kept in the alphabet gets a token and a `##` form, so
    tokenization only yields `[UNK]` for characters outside it.
    """
    counts = count_words(input_files, lower_case)
    if not counts:
        raise ValueError(f"No words in {list(input_files)}; cannot learn a vocabulary.")
    vocab = learner.learn(
        counts.items(), vocab_size=vocab_size, reserved_tokens=list(names.SPECIAL_TOKENS),
        upper_thresh=10_000_000, lower_thresh=1, num_iterations=num_iterations,
        max_input_tokens=5_000_000, max_token_length=max_token_length,
        max_unique_chars=max_unique_chars, slack_ratio=0.05,
        include_joiner_token=True, joiner="##")
    # Special tokens first, each once, then the learned pieces in the learner's order.
    special = list(names.SPECIAL_TOKENS)
    return special + [t for t in vocab if t not in special]


def write_vocab(tokens, path):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for token in tokens:
            f.write(token + "\n")
