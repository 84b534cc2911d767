"""SQuAD windows and answer selection as TensorFlow graph code, for the served model.

The same algorithm as `data/squad_features.py` (windows, character spans, the
max-context rule) and `training/squad_predictions.py` (top-n starts and ends, valid
spans, the best span over all windows, SQuAD v2.0's null score), written over whole
batches of tensors so that a SavedModel answers raw text with no Python at serving
time. The tests check that both give the same answers.

Shapes: `batch` questions; `T` windows over all of them (an example has at least
one); `width` the longest window of the batch (at most `max_seq_length`); `k` the
n-best size (at most `width`).
"""

import dataclasses

import tensorflow as tf

from keras_bert_app import names

# Windows narrower than this are padded to it (an empty batch still has a shape the
# encoder accepts).
MIN_WIDTH = 3


@dataclasses.dataclass(frozen=True)
class SquadGraphSettings:
    """What windows and answers are made with (a SQuAD model directory's settings)."""

    max_seq_length: int
    doc_stride: int
    max_query_length: int
    max_answer_length: int
    n_best_size: int
    version_2_with_negative: bool
    null_score_diff_threshold: float

    @classmethod
    def from_task_config(cls, task_config):
        settings = task_config.settings
        return cls(max_seq_length=task_config.max_seq_length,
                   **{k: settings[k] for k in names.SQUAD_SETTINGS})


def char_offsets(text, byte_starts, byte_limits):
    """Byte offsets of pieces → `[start, end)` character offsets into their strings.

    Args:
        text: string `[batch]`.
        byte_starts, byte_limits: int `[batch, (pieces)]` ragged, byte offsets into the
            row's string (each at a character boundary, as the tokenizer gives them).

    Returns:
        int64 `[batch, (pieces)]` start and end characters (code points as UTF-8
        decoding with replacement counts them: Python's indices for valid UTF-8).
    """
    # Every character's first byte, as offsets into the concatenation of all rows:
    # one sorted vector, so one searchsorted serves the whole batch.
    _, char_bytes = tf.strings.unicode_decode_with_offsets(
        text, "UTF-8", errors="replace", replacement_char=0xFFFD)  # [batch, (chars)]
    byte_base = tf.cumsum(tf.cast(tf.strings.length(text), tf.int64), exclusive=True)
    char_base = tf.cumsum(char_bytes.row_lengths(), exclusive=True)  # [batch]
    all_char_bytes = char_bytes.flat_values + tf.gather(byte_base,
                                                        char_bytes.value_rowids())
    rows = byte_starts.value_rowids()
    starts = tf.cast(byte_starts.flat_values, tf.int64) + tf.gather(byte_base, rows)
    limits = tf.cast(byte_limits.flat_values, tf.int64) + tf.gather(byte_base, rows)
    # A piece starts at a character's first byte; its limit is the next character's
    # first byte (that of the next row's first character at a row's end: the count
    # of characters before it is then the row's length).
    first = tf.searchsorted(all_char_bytes, starts, side="right", out_type=tf.int64) - 1
    end = tf.searchsorted(all_char_bytes, limits, side="left", out_type=tf.int64)
    base = tf.gather(char_base, rows)
    return byte_starts.with_flat_values(first - base), \
        byte_starts.with_flat_values(end - base)


def squad_windows(query, context_ids, settings, special_ids):
    """Google's windows over every example's context pieces, as dense tensors.

    Args:
        query: int32 `[batch, (q)]` question pieces, already cut to max_query_length.
        context_ids: int32 `[batch, (n)]` context pieces.
        settings: `SquadGraphSettings`.
        special_ids: the tokenizer's special token ids.

    Returns:
        A dict: encoder inputs `input_word_ids`, `input_mask`, `input_type_ids`
        (int32 `[T, width]`); `example` (int64 `[T]`, each window's row);
        `piece` (int64 `[T, width]`: the position's index into
        `context_ids.flat_values`, -1 off the context); `max_context` (bool
        `[T, width]`).
    """
    length = settings.max_seq_length
    q = query.row_lengths()  # int64 [batch]
    n = context_ids.row_lengths()
    window_length = length - q - 3  # >= 1: max_query_length <= max_seq_length - 4
    step = tf.minimum(window_length, settings.doc_stride)
    # Google's loop: windows `step` apart until one reaches the end; one (possibly
    # empty) window for a context that fits.
    num_windows = tf.where(n <= window_length, tf.ones_like(n),
                           (n - window_length + step - 1) // step + 1)
    example = tf.repeat(tf.range(tf.size(n, out_type=tf.int64)), num_windows)  # [T]
    start = tf.ragged.range(num_windows).flat_values * tf.gather(step, example)
    count = tf.minimum(tf.gather(n, example) - start, tf.gather(window_length, example))
    q_w = tf.gather(q, example)  # [T]
    used = q_w + count + 3  # [CLS] query [SEP] context [SEP]
    width = tf.maximum(tf.reduce_max(tf.concat([used, [0]], 0)), MIN_WIDTH)

    position = tf.range(width, dtype=tf.int64)[tf.newaxis, :]  # [1, width]
    offset = position - (q_w + 2)[:, tf.newaxis]  # [T, width] index in the window
    in_context = tf.logical_and(offset >= 0, offset < count[:, tf.newaxis])
    piece = tf.where(in_context, tf.gather(context_ids.row_starts(), example)[:, None]
                     + start[:, tf.newaxis] + offset, -1)
    in_query = tf.logical_and(position >= 1, position <= q_w[:, tf.newaxis])
    query_index = tf.gather(query.row_starts(), example)[:, None] + position - 1
    mask = position < used[:, tf.newaxis]
    is_sep = tf.logical_or(tf.equal(position, (q_w + 1)[:, None]),
                           tf.equal(position, (used - 1)[:, None]))
    word_ids = tf.where(in_context, gather_or_zero(context_ids.flat_values, piece),
                        tf.zeros_like(piece, tf.int32))
    word_ids = tf.where(in_query, gather_or_zero(query.flat_values, query_index),
                        word_ids)
    word_ids = tf.where(tf.logical_and(is_sep, mask), special_ids[names.SEP_TOKEN],
                        word_ids)
    word_ids = tf.where(tf.equal(position, 0), special_ids[names.CLS_TOKEN], word_ids)
    word_ids = tf.where(mask, word_ids, special_ids[names.PAD_TOKEN])
    type_ids = tf.logical_and(mask, offset >= 0)  # the context and its closing [SEP]
    return {names.INPUT_WORD_IDS: tf.cast(word_ids, tf.int32),
            names.INPUT_MASK: tf.cast(mask, tf.int32),
            names.INPUT_TYPE_IDS: tf.cast(type_ids, tf.int32),
            "example": example, "piece": piece,
            "max_context": max_context_flags(piece, in_context, offset, count,
                                        tf.size(context_ids.flat_values, tf.int64))}


def gather_or_zero(values, index):
    """values[index] where 0 <= index < len(values), else 0 (positions masked later)."""
    safe = tf.clip_by_value(index, 0, tf.maximum(tf.size(values, tf.int64) - 1, 0))
    return tf.where(tf.logical_and(index >= 0, index < tf.size(values, tf.int64)),
                    tf.gather(tf.concat([values, [0]], 0), safe), 0)


def max_context_flags(piece, in_context, offset, count, num_pieces):
    """Google's `_check_is_max_context` for every context position of every window:
    the window where the piece has the most context on its shorter side (+ 0.01 per
    window length; float64 as Python's arithmetic), the first one on ties."""
    cells = tf.where(in_context)  # [cells, 2]: (window, position)
    window = cells[:, 0]
    score = (tf.cast(tf.minimum(tf.gather_nd(offset, cells),
                                tf.gather(count, window) - 1 - tf.gather_nd(offset, cells)),
                     tf.float64)
             + 0.01 * tf.cast(tf.gather(count, window), tf.float64))
    segment = tf.gather_nd(piece, cells)
    best = tf.math.unsorted_segment_max(score, segment, num_pieces)
    is_best = tf.equal(score, tf.gather(best, segment))
    first = tf.math.unsorted_segment_min(
        tf.where(is_best, window, tf.int64.max), segment, num_pieces)
    chosen = tf.equal(window, tf.gather(first, segment))
    return tf.scatter_nd(cells, chosen, tf.shape(piece, out_type=tf.int64))


def best_answers(start_logits, end_logits, windows, num_examples, settings):
    """The best span of each example over its windows, and SQuAD v2.0's null score.

    Args:
        start_logits, end_logits: float `[T, width]`.
        windows: `squad_windows`' dict.
        num_examples: the batch size.
        settings: `SquadGraphSettings`.

    Returns:
        A dict: `has_span` bool `[batch]` (a valid span exists), `span_score` float64
        `[batch]` (start + end logit of the best one, -inf without one),
        `start_piece`, `end_piece` int64 `[batch]` (indices into the context pieces'
        flat values, -1 without one), `null_score` float64 `[batch]` (the smallest
        `[CLS]` start + end logit over the example's windows).
    """
    starts = tf.cast(start_logits, tf.float64)  # as predictions.json: float64 sums
    ends = tf.cast(end_logits, tf.float64)
    real = tf.cast(windows[names.INPUT_MASK], tf.bool)  # [T, width]
    piece, example = windows["piece"], windows["example"]
    is_context = piece >= 0
    k = tf.minimum(settings.n_best_size, tf.shape(starts)[1])
    # The n best starts and ends among the window's real positions (lower index first
    # on ties, as a stable sort).
    start_values, start_at = tf.math.top_k(tf.where(real, starts, -float("inf")), k)
    end_values, end_at = tf.math.top_k(tf.where(real, ends, -float("inf")), k)  # [T, k]
    start_ok = tf.gather(tf.logical_and(is_context, windows["max_context"]), start_at,
                         batch_dims=1)
    end_ok = tf.gather(is_context, end_at, batch_dims=1)
    span = end_at[:, tf.newaxis, :] - start_at[:, :, tf.newaxis] + 1  # [T, k, k]
    valid = start_ok[:, :, None] & end_ok[:, None, :] & (span >= 1) & \
        (span <= settings.max_answer_length)
    scores = start_values[:, :, None] + end_values[:, None, :]  # [T, k, k]

    # The best over each example's windows: the first candidate in (window, start
    # rank, end rank) order among equals, as a stable sort of the candidates.
    valid = tf.reshape(valid, [-1])
    scores = tf.where(valid, tf.reshape(scores, [-1]), -float("inf"))
    owner = tf.repeat(example, k * k)
    has_span = tf.math.unsorted_segment_max(tf.cast(valid, tf.int32), owner,
                                            num_examples) > 0
    best = tf.math.unsorted_segment_max(scores, owner, num_examples)
    best = tf.where(has_span, best, -float("inf"))
    candidate = tf.range(tf.size(scores, tf.int64))
    chosen = tf.math.unsorted_segment_min(
        tf.where(tf.logical_and(valid, tf.equal(scores, tf.gather(best, owner))),
                 candidate, tf.int64.max), owner, num_examples)
    chosen = tf.where(has_span, chosen, 0)
    k = tf.cast(k, tf.int64)
    window, rank = chosen // (k * k), chosen % (k * k)
    start_position = tf.gather_nd(tf.cast(start_at, tf.int64),
                                  tf.stack([window, rank // k], axis=1))
    end_position = tf.gather_nd(tf.cast(end_at, tf.int64),
                                tf.stack([window, rank % k], axis=1))
    start_piece = tf.gather_nd(piece, tf.stack([window, start_position], axis=1))
    end_piece = tf.gather_nd(piece, tf.stack([window, end_position], axis=1))
    null_score = tf.math.unsorted_segment_min(starts[:, 0] + ends[:, 0], example,
                                              num_examples)
    return {"has_span": has_span, "span_score": best,
            "start_piece": tf.where(has_span, start_piece, -1),
            "end_piece": tf.where(has_span, end_piece, -1),
            "null_score": null_score}
