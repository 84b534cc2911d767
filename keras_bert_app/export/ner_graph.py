"""NER windows, per-word tags and entity spans as TensorFlow graph code, for the
served model.

The same algorithm as `data/ner_features.py` (windows `[CLS] pieces [SEP]` whose
starts are `doc_stride` pieces apart, each word read at its first piece in its
max-context window) and `training/ner_metrics.py`'s default mode (conlleval's
chunks), written over whole batches so that a SavedModel tags raw text with no
Python at serving time. The tests check that both give the same tags.

Shapes: `batch` texts; `W` words over all of them; `T` windows (a text has at least
one); `width` the longest window of the batch (at most `max_seq_length`).
"""

import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.data.ner_data import is_iob_tag
from keras_bert_app.export.squad_graph import (MIN_WIDTH, gather_or_zero,
                                               max_context_flags)



def ner_windows(ids, max_seq_length, doc_stride, special_ids):
    """Google's windows over every text's pieces, as dense tensors.

    Args:
        ids: int32 `[batch, (n)]` pieces.
        max_seq_length: window length with `[CLS]` and `[SEP]` (>= 3).
        doc_stride: pieces between window starts.
        special_ids: the tokenizer's special token ids.

    Returns:
        A dict: the encoder inputs (int32 `[T, width]`), `piece` (int64 `[T, width]`:
        the position's index into `ids.flat_values`, -1 elsewhere) and `max_context`
        (bool `[T, width]`: the window is the piece's max-context window).
    """
    window_length = max_seq_length - 2
    step = min(window_length, doc_stride)  # Google's loop, while a window stops short
    n = ids.row_lengths()  # int64 [batch]
    num_windows = tf.where(n <= window_length, tf.ones_like(n),
                           (n - window_length + step - 1) // step + 1)
    example = tf.repeat(tf.range(tf.size(n, out_type=tf.int64)), num_windows)  # [T]
    start = tf.ragged.range(num_windows).flat_values * step
    count = tf.minimum(tf.gather(n, example) - start, window_length)  # pieces, [T]
    used = count + 2
    width = tf.maximum(tf.reduce_max(tf.concat([used, [0]], 0)), MIN_WIDTH)
    position = tf.range(width, dtype=tf.int64)[tf.newaxis, :]  # [1, width]
    # [T, width]: index in the window's pieces.
    offset = tf.broadcast_to(position - 1, tf.stack([tf.size(count, tf.int64), width]))
    in_window = tf.logical_and(offset >= 0, offset < count[:, tf.newaxis])
    piece = tf.where(in_window, tf.gather(ids.row_starts(), example)[:, tf.newaxis]
                     + start[:, tf.newaxis] + offset, -1)
    mask = position < used[:, tf.newaxis]
    word_ids = tf.where(in_window, gather_or_zero(ids.flat_values, piece),
                        tf.zeros_like(piece, tf.int32))
    word_ids = tf.where(tf.equal(position, (used - 1)[:, tf.newaxis]),
                        special_ids[names.SEP_TOKEN], word_ids)
    word_ids = tf.where(tf.equal(position, 0), special_ids[names.CLS_TOKEN], word_ids)
    word_ids = tf.where(mask, word_ids, special_ids[names.PAD_TOKEN])
    return {names.INPUT_WORD_IDS: tf.cast(word_ids, tf.int32),
            names.INPUT_MASK: tf.cast(mask, tf.int32),
            names.INPUT_TYPE_IDS: tf.zeros_like(word_ids, tf.int32),
            "piece": piece,
            "max_context": max_context_flags(piece, in_window, offset, count,
                                        tf.size(ids.flat_values, tf.int64))}


def piece_tags(logits, windows, num_pieces):
    """int64 `[num_pieces]`: the argmax tag of each piece's logits in its max-context
    window (every piece has exactly one)."""
    cells = tf.where(tf.logical_and(windows["piece"] >= 0, windows["max_context"]))
    best = tf.argmax(tf.gather_nd(logits, cells), axis=-1)  # [cells]
    return tf.scatter_nd(tf.gather_nd(windows["piece"], cells)[:, tf.newaxis], best,
                         tf.reshape(num_pieces, [1]))


def label_tables(label_names):
    """`(prefix, type id, type names)` of IOB tags: prefix 0 `O`, 1 `B`, 2 `I` per
    tag id; type id per tag id (-1 for `O`); the types, sorted."""
    bad = [t for t in label_names if not is_iob_tag(t)]
    if bad:
        raise ValueError(f"label_names {bad} are not IOB tags (O, B-TYPE, I-TYPE): the "
                         "export reads entities from IOB tags.")
    types = sorted({t[2:] for t in label_names if t != "O"})
    prefix = [0 if t == "O" else 1 if t[0] == "B" else 2 for t in label_names]
    type_id = [-1 if t == "O" else types.index(t[2:]) for t in label_names]
    return prefix, type_id, types


def entity_words(tag_ids, word_rows, prefix_table, type_table, strict=False):
    """Entities over each text's words by `training.ner_metrics.entities`' rules.

    Args:
        tag_ids: int `[W]`, the tag of every word (all texts, in order).
        word_rows: int64 `[W]`, each word's text.
        prefix_table, type_table: int32 `[tags]` from `label_tables`.
        strict: seqeval's strict IOB2 mode instead of conlleval's chunks.

    Returns:
        `(first word, last word, type id)`, int64 `[entities]` each, in text order.
        conlleval: a chunk starts at `B-X`, and at `I-X` after `O`, a text's start or
        another type; it goes on over the following `I-X`. Strict: an entity is
        `B-X` and the `I-X`s right after it; any other `I-` is in no entity.
    """
    prefix = tf.gather(prefix_table, tag_ids)
    kind = tf.gather(type_table, tag_ids)
    first_in_row = tf.not_equal(word_rows, tf.concat([[-1], word_rows[:-1]], 0))
    previous_kind = tf.concat([[-1], kind[:-1]], 0)
    # An I- that cannot continue the word before it: conlleval starts a chunk there.
    stray = tf.logical_and(tf.equal(prefix, 2),
                           tf.logical_or(first_in_row, tf.not_equal(previous_kind, kind)))
    if strict:
        starts = tf.equal(prefix, 1)
        # Runs of words that continue one another (an I- of the word before's type
        # in the same text) begin at every other word; a run's words are an
        # entity's when it begins at a B-.
        run = tf.cumsum(tf.cast(tf.logical_or(tf.not_equal(prefix, 2), stray),
                                tf.int64)) - 1  # [W]
        run_begins_with_b = tf.math.unsorted_segment_max(
            tf.cast(starts, tf.int32), run, tf.reduce_max(tf.concat([run, [-1]], 0)) + 1)
        inside = tf.logical_and(prefix > 0, tf.gather(run_begins_with_b, run) > 0)
    else:
        starts = tf.logical_or(tf.equal(prefix, 1), stray)
        inside = prefix > 0  # a non-O word after a start continues its chunk
    entity = tf.cumsum(tf.cast(starts, tf.int64)) - 1  # [W]
    count = tf.reduce_sum(tf.cast(starts, tf.int64))
    words = tf.range(tf.size(tag_ids, out_type=tf.int64))
    first = tf.boolean_mask(words, starts)
    last = tf.math.unsorted_segment_max(tf.boolean_mask(words, inside),
                                        tf.boolean_mask(entity, inside), count)
    return first, last, tf.cast(tf.boolean_mask(kind, starts), tf.int64)
