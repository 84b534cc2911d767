"""SQuAD examples → encoder windows, as Google's `run_squad.py` makes them, with
character offsets from our own tokenizer.

Each example becomes `[CLS] question [SEP] context-window [SEP]` windows: the question
cut to `max_query_length` pieces, windows of at most `max_seq_length - len(question)
- 3` context pieces whose starts are `doc_stride` pieces apart (Google's meaning of
doc_stride: the step between window starts, not Hugging Face's overlap); the last
window ends at the context's end. Every context piece carries the character span of
the original context it covers (from `BertTokenizer.tokenize_with_offsets` on the
unnormalised text, so lower-casing and accent stripping move nothing) and whether this
window is its "max context" window (Google's rule: the window where the piece has the
most context on its shorter side, plus 0.01 per window length).

Training labels: the answer's first and last piece when the window holds the whole
answer, else `[CLS]` (position 0) for both — as for an unanswerable question.
"""

import bisect
import dataclasses

import numpy as np

from keras_bert_app import names


@dataclasses.dataclass
class SquadFeature:
    """One window of one example.

    Args:
        example_index: the example's index in the list given.
        window_index: the window's index within the example.
        input_word_ids, input_mask, input_type_ids: int32 `[max_seq_length]`.
        char_spans: int32 `[max_seq_length, 2]`: `[start, end)` characters of the
            context that each position covers; `-1` for the question, special
            tokens and padding.
        max_context: bool `[max_seq_length]`: the window is the piece's max-context
            window (answers may start only there).
        start_position, end_position: training labels (0 = `[CLS]`: no answer here).
    """

    example_index: int
    window_index: int
    input_word_ids: np.ndarray
    input_mask: np.ndarray
    input_type_ids: np.ndarray
    char_spans: np.ndarray
    max_context: np.ndarray
    start_position: int = 0
    end_position: int = 0


def window_starts(num_pieces, window_length, doc_stride):
    """Start offsets of the windows over `num_pieces` context pieces (Google's loop)."""
    if window_length < 1 or doc_stride < 1:
        raise ValueError(f"window_length={window_length} and doc_stride={doc_stride} "
                         "must be positive.")
    starts, start = [], 0
    while True:
        starts.append(start)
        length = min(num_pieces - start, window_length)
        if start + length >= num_pieces:
            return starts
        start += min(length, doc_stride)


def is_max_context(starts, lengths, window, position):
    """Google's `_check_is_max_context`: is `window` the best window for the piece at
    context `position` (the most context on its shorter side, plus 0.01 per window
    length; the first such window on ties)? Only the few windows around the position
    are looked at, so a 100,000-word context stays linear."""
    best_score, best_window = None, None
    last = bisect.bisect_right(starts, position) - 1
    first = last
    while first > 0 and starts[first - 1] + lengths[first - 1] > position:
        first -= 1
    for index in range(first, last + 1):
        start, end = starts[index], starts[index] + lengths[index] - 1
        if position > end:
            continue
        score = min(position - start, end - position) + 0.01 * lengths[index]
        if best_score is None or score > best_score:
            best_score, best_window = score, index
    return best_window == window


def _char_spans(text, byte_starts, byte_limits):
    """Byte offsets of pieces in UTF-8 `text` → `[start, end)` character offsets."""
    char_byte_starts, position = [], 0
    for ch in text:
        char_byte_starts.append(position)
        position += len(ch.encode("utf-8"))
    # A piece's bytes start at a character start; its limit is the next character's
    # start (or the end), so both map exactly.
    return [(bisect.bisect_right(char_byte_starts, s) - 1,
             bisect.bisect_left(char_byte_starts, l) if l < position else len(text))
            for s, l in zip(byte_starts, byte_limits)]


def _pieces(tokenizer, texts, with_offsets):
    import tensorflow as tf

    if with_offsets:
        ids, starts, limits = tokenizer.tokenize_with_offsets(tf.constant(texts))
        return [(i, s, l) for i, s, l in zip(ids.merge_dims(1, 2).to_list(),
                                            starts.merge_dims(1, 2).to_list(),
                                            limits.merge_dims(1, 2).to_list())]
    return tokenizer.tokenize(tf.constant(texts)).merge_dims(1, 2).to_list()


def squad_features(examples, tokenizer, max_seq_length=384, doc_stride=128,
                   max_query_length=64, is_training=False, batch_size=256):
    """The windows (`SquadFeature`s) of `examples`, in example order.

    Args:
        examples: `SquadExample`s.
        tokenizer: a `kba.text.BertTokenizer` (the model's vocabulary and casing).
        max_seq_length, doc_stride, max_query_length: Google's flags.
        is_training: set the answer labels (the first answer of each example).
        batch_size: examples tokenized per TensorFlow call.
    """
    if not 1 <= max_query_length <= max_seq_length - 4 or doc_stride < 1:
        raise ValueError(f"max_seq_length={max_seq_length}, max_query_length="
                         f"{max_query_length}, doc_stride={doc_stride}: a window needs "
                         "[CLS] question [SEP] context [SEP] with at least one piece of "
                         "context (max_query_length <= max_seq_length - 4), and a "
                         "positive stride.")
    cls_id = tokenizer.special_ids[names.CLS_TOKEN]
    sep_id = tokenizer.special_ids[names.SEP_TOKEN]
    features = []
    for first in range(0, len(examples), batch_size):
        batch = examples[first:first + batch_size]
        questions = _pieces(tokenizer, [e.question for e in batch], with_offsets=False)
        contexts = _pieces(tokenizer, [e.context for e in batch], with_offsets=True)
        for offset, example in enumerate(batch):
            query = questions[offset][:max_query_length]
            ids, byte_starts, byte_limits = contexts[offset]
            spans = _char_spans(example.context, byte_starts, byte_limits)
            features += _windows(first + offset, example, query, ids, spans,
                                 max_seq_length, doc_stride, is_training, cls_id, sep_id)
    return features


def _answer_pieces(example, spans):
    """First and last context piece of the first answer (pieces overlapping its
    characters), or None for an unanswerable example."""
    if not example.answers:
        return None
    text, start_char = example.answers[0]
    end_char = start_char + len(text)
    covered = [i for i, (s, e) in enumerate(spans) if s < end_char and e > start_char]
    if not covered:  # an answer of characters the tokenizer drops (spaces, controls)
        raise ValueError(f"question {example.qid!r}: the answer {text!r} at character "
                         f"{start_char} covers no token of the context.")
    return covered[0], covered[-1]


def _windows(example_index, example, query, ids, spans, max_seq_length, doc_stride,
             is_training, cls_id, sep_id):
    window_length = max_seq_length - len(query) - 3
    starts = window_starts(len(ids), window_length, doc_stride)
    lengths = [min(len(ids) - s, window_length) for s in starts]
    answer = _answer_pieces(example, spans) if is_training else None
    offset = len(query) + 2  # position of the first context piece in a window
    windows = []
    for window, (start, length) in enumerate(zip(starts, lengths)):
        word_ids = [cls_id] + query + [sep_id] + ids[start:start + length] + [sep_id]
        used = len(word_ids)
        feature = SquadFeature(
            example_index, window,
            input_word_ids=np.zeros(max_seq_length, np.int32),
            input_mask=np.zeros(max_seq_length, np.int32),
            input_type_ids=np.zeros(max_seq_length, np.int32),
            char_spans=np.full((max_seq_length, 2), -1, np.int32),
            max_context=np.zeros(max_seq_length, bool))
        feature.input_word_ids[:used] = word_ids
        feature.input_mask[:used] = 1
        feature.input_type_ids[offset:used] = 1  # the context and its closing [SEP]
        if length:  # a context of only spaces or control characters has no piece
            feature.char_spans[offset:offset + length] = spans[start:start + length]
        feature.max_context[offset:offset + length] = [
            is_max_context(starts, lengths, window, start + i) for i in range(length)]
        if answer is not None and start <= answer[0] and answer[1] < start + length:
            feature.start_position = answer[0] - start + offset
            feature.end_position = answer[1] - start + offset
        windows.append(feature)
    return windows
