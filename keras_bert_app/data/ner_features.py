"""NER sentences → encoder windows with BERT's first-piece labels, and the windows'
logits → one tag per word.

Each word is split by our tokenizer (BasicTokenizer + WordPiece: punctuation inside
a CoNLL token becomes words of its own, each then pieces); the word's FIRST piece
carries its label, every other piece and the special tokens carry
`names.IGNORE_LABEL_ID` (-100), as in Google's and Hugging Face's recipe. A sentence
of more than `max_seq_length - 2` pieces is never cut: it is split into windows
`[CLS] pieces [SEP]` whose starts are `doc_stride` pieces apart (Google's SQuAD loop,
`squad_features.window_starts`); training labels every first piece in every window,
and prediction reads each word from the window where its first piece has the most
context (Google's max-context rule, `squad_features.is_max_context`), so every word
is predicted exactly once. A word with no piece at all (only control or zero-width
characters, which the tokenizer deletes) carries no label and is predicted `O`.
"""

import dataclasses

import numpy as np

from keras_bert_app import names
from keras_bert_app.data.squad_features import is_max_context, window_starts


@dataclasses.dataclass
class NerWindows:
    """The windows of a list of sentences, in sentence order; `[N, max_seq_length]`.

    Args:
        input_word_ids, input_mask: int32 `[N, S]` encoder inputs (type ids are 0).
        labels: int32 `[N, S]`: the tag id at each word's first piece (every window
            holding it), -100 elsewhere; all -100 without tags.
        word_at: int32 `[N, S]`: the index (in its sentence) of the word predicted
            from this position — its first piece, in its max-context window — else -1.
        lengths: int32 `[N]`: real positions, `[CLS]` and `[SEP]` included.
        sentence: int32 `[N]`: each window's sentence.
        no_piece_words: words that got no piece (predicted `O`).
    """

    input_word_ids: np.ndarray
    input_mask: np.ndarray
    labels: np.ndarray
    word_at: np.ndarray
    lengths: np.ndarray
    sentence: np.ndarray
    no_piece_words: int = 0

    def __len__(self):
        return len(self.sentence)

    def inputs(self, rows=slice(None), length=None):
        """Encoder inputs of `rows`, cut to `length` positions."""
        length = length or self.input_word_ids.shape[1]
        ids = self.input_word_ids[rows, :length]
        return {names.INPUT_WORD_IDS: ids, names.INPUT_MASK: self.input_mask[rows, :length],
                names.INPUT_TYPE_IDS: np.zeros_like(ids)}


def word_pieces(sentences, tokenizer, batch_size=8192):
    """Piece ids of every word: `[sentence][word][piece]` lists. Words are tokenized
    one by one (the tokenizer splits on whitespace first, so a word's pieces are what
    they are inside the sentence joined by spaces)."""
    import tensorflow as tf

    flat = [w for words in sentences for w in words]
    pieces = []
    for first in range(0, len(flat), batch_size):
        ragged = tokenizer.tokenize(tf.constant(flat[first:first + batch_size]))
        ragged = ragged.merge_dims(1, 2)  # [words, pieces]
        values = ragged.flat_values.numpy().tolist()
        splits = ragged.row_splits.numpy().tolist()
        pieces += [values[a:b] for a, b in zip(splits[:-1], splits[1:])]
    result, index = [], 0
    for words in sentences:
        result.append(pieces[index:index + len(words)])
        index += len(words)
    return result


def ner_windows(sentences, tokenizer, max_seq_length, doc_stride, tag_ids=None):
    """`NerWindows` of `sentences` (lists of words).

    Args:
        sentences: lists of words.
        tokenizer: the model's `BertTokenizer`.
        max_seq_length: window length, `[CLS]` and `[SEP]` included (>= 3).
        doc_stride: pieces between window starts.
        tag_ids: per sentence, the tag id of each word (training/evaluation), or None.
    """
    if max_seq_length < 3 or doc_stride < 1:
        raise ValueError(f"max_seq_length={max_seq_length} must be at least 3 and "
                         f"doc_stride={doc_stride} positive.")
    cls_id = tokenizer.special_ids[names.CLS_TOKEN]
    sep_id = tokenizer.special_ids[names.SEP_TOKEN]
    pad_id = tokenizer.special_ids[names.PAD_TOKEN]
    window_length = max_seq_length - 2
    rows = {k: [] for k in ("ids", "labels", "word_at", "lengths", "sentence")}
    no_piece = 0
    for index, words in enumerate(word_pieces(sentences, tokenizer)):
        ids, first_piece = [], []
        for pieces in words:
            first_piece.append(len(ids) if pieces else None)
            ids += pieces
        no_piece += first_piece.count(None)
        # The word whose first piece each piece is, or -1.
        owner = np.full(len(ids), -1, np.int32)
        for word, piece in enumerate(first_piece):
            if piece is not None:
                owner[piece] = word
        starts = window_starts(len(ids), window_length, doc_stride)
        lengths = [min(len(ids) - s, window_length) for s in starts]
        for window, (start, length) in enumerate(zip(starts, lengths)):
            word_ids = np.full(max_seq_length, pad_id, np.int32)
            word_ids[:length + 2] = [cls_id] + ids[start:start + length] + [sep_id]
            labels = np.full(max_seq_length, names.IGNORE_LABEL_ID, np.int32)
            word_at = np.full(max_seq_length, -1, np.int32)
            for offset in range(length):
                word = owner[start + offset]
                if word < 0:
                    continue
                if tag_ids is not None:
                    labels[offset + 1] = tag_ids[index][word]
                if is_max_context(starts, lengths, window, start + offset):
                    word_at[offset + 1] = word
            rows["ids"].append(word_ids)
            rows["labels"].append(labels)
            rows["word_at"].append(word_at)
            rows["lengths"].append(length + 2)
            rows["sentence"].append(index)
    ids = np.stack(rows["ids"]) if rows["ids"] else np.zeros([0, max_seq_length], np.int32)
    lengths = np.asarray(rows["lengths"], np.int32)
    mask = (np.arange(max_seq_length)[None, :] < lengths[:, None]).astype(np.int32)
    stack = lambda key: np.stack(rows[key]) if rows[key] else np.zeros_like(ids)
    return NerWindows(ids, mask, stack("labels"), stack("word_at"), lengths,
                      np.asarray(rows["sentence"], np.int32), no_piece)


def word_predictions(windows, logits, sentences, outside_id):
    """Each word's tag id from its first piece's logits in its max-context window.

    Args:
        windows: the `NerWindows` of `sentences`.
        logits: float `[N, >= max used length, num_tags]`, the model's outputs.
        sentences: the word lists the windows were made from.
        outside_id: the id of `O` (words without pieces).

    Returns:
        Per sentence, a list of tag ids, one per word.
    """
    result = [[outside_id] * len(words) for words in sentences]
    rows, positions = np.nonzero(windows.word_at >= 0)
    best = np.argmax(logits[rows, positions], axis=-1)
    for row, position, tag in zip(rows.tolist(), positions.tolist(), best.tolist()):
        result[windows.sentence[row]][windows.word_at[row, position]] = tag
    return result
