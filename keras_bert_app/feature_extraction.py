"""Features of any model directory (pre-trained or fine-tuned): per-layer token
vectors and pooled sentence embeddings of raw text, batch by batch.

The encoder runs in TensorFlow graphs (tokenizing, packing, encoder and pooling in
one function per batch); the embedder SavedModel (`export/embedder.py`) serves the
same graph code (`FeatureExtractor.embedding_graph`), so its vectors are these.
Files in and out (Google's `extract_features.py` contract): `feature_files.py`.
"""

import collections

import keras
import numpy as np
import tensorflow as tf

from keras_bert_app import names

# Sentence embeddings: the first token's vector (`cls`, as sentence-transformers'
# CLS pooling: not the pooler's dense + tanh) or the mean over real tokens.
CLS_POOLING, MEAN_POOLING = names.CLS_POOLING, names.MEAN_POOLING
POOLING_MODES = names.POOLING_MODES
EMBEDDING = names.EMBEDDING  # the key of a vector in JSON lines and in the SavedModel
# Google's default --layers: the last four transformer layers.
DEFAULT_LAYERS = (-1, -2, -3, -4)

Example = collections.namedtuple("Example", ["text_a", "text_b"], defaults=[None])


def parse_layers(layers, num_layers):
    """`"-1,-2"` or a sequence of ints → a tuple of layer indexes, Python-style
    (-1 the last transformer layer, 0 the first), each checked to exist."""
    items = layers.split(",") if isinstance(layers, str) else list(layers)
    parsed = []
    for item in items:
        try:
            index = int(str(item).strip())
        except ValueError:
            raise ValueError(f"layers={layers!r}: {item!r} is not a layer index.") from None
        if not -num_layers <= index < num_layers:
            raise ValueError(f"layers={layers!r}: layer {index} does not exist in this "
                             f"{num_layers}-layer encoder (valid: {-num_layers} to "
                             f"{num_layers - 1}).")
        parsed.append(index)
    if not parsed:
        raise ValueError(f"layers={layers!r}: no layer given.")
    return tuple(parsed)


def check_pooling(pooling):
    if pooling not in POOLING_MODES:
        raise ValueError(f"pooling={pooling!r}; expected one of {list(POOLING_MODES)}.")
    return pooling


def pool(hidden, input_mask, pooling, normalize):
    """Sentence vectors of a batch, in graph: `hidden [batch, seq, H]`, `input_mask
    [batch, seq]` (1 on real tokens) → float32 `[batch, H]`.

    The mean and the L2 normalisation are sentence-transformers' (token counts
    clamped at 1e-9, norms at 1e-12: an all-zero vector stays zero, never NaN)."""
    check_pooling(pooling)
    hidden = tf.cast(hidden, tf.float32)
    if pooling == CLS_POOLING:
        pooled = hidden[:, 0, :]
    else:
        weights = tf.cast(input_mask, tf.float32)[:, :, None]  # [batch, seq, 1]
        pooled = tf.reduce_sum(hidden * weights, axis=1) / tf.maximum(
            tf.reduce_sum(weights, axis=1), 1e-9)
    if normalize:
        pooled /= tf.maximum(tf.norm(pooled, axis=-1, keepdims=True), 1e-12)
    return pooled


class FeatureExtractor:
    """Runs an encoder over raw text in batches: sentence embeddings or per-layer
    token vectors, in the examples' order.

    Args:
        encoder: a `BertEncoder` (TensorFlow backend).
        preprocessor: its `BertTextPreprocessor`; with `dynamic_padding` each batch
            is padded only to its longest row.

    Example:
    >>> extractor = FeatureExtractor.from_model_dir("/tmp/kba/minilm")
    >>> vectors = extractor.embed(["A gripping film.", "A dull mess."])  # [2, 384]
    >>> float(vectors[0] @ vectors[1])  # cosine similarity: normalised by default
    >>> tokens, values = next(extractor.token_features(["A gripping film."], [-1]))
    """

    def __init__(self, encoder, preprocessor):
        if keras.backend.backend() != "tensorflow":
            raise ValueError("FeatureExtractor runs the encoder in TensorFlow graphs; "
                             f"this process runs the {keras.backend.backend()!r} Keras "
                             "backend (set KERAS_BACKEND=tensorflow).")
        self.encoder = encoder
        self.preprocessor = preprocessor
        self._functions = {}

    @classmethod
    def from_model_dir(cls, model_dir, max_seq_length=128):
        from keras_bert_app.model_dir import load_encoder
        from keras_bert_app.text.preprocessing_layer import BertTextPreprocessor

        preprocessor = BertTextPreprocessor.from_model_dir(
            model_dir, sequence_length=max_seq_length, dynamic_padding=True)
        return cls(load_encoder(model_dir), preprocessor)

    @property
    def num_layers(self):
        return self.encoder.config.num_hidden_layers

    @property
    def hidden_size(self):
        return self.encoder.config.hidden_size

    # ------------------------------------------------------------ graph code

    def embedding_graph(self, segments, pooling, normalize):
        """String tensors `[batch]` (text_a, and text_b for pairs) → float32
        `[batch, H]`: the last layer pooled, in graph."""
        inputs = self.preprocessor.pack(segments, pad_to_longest=True)  # [batch, len]
        outputs = self.encoder(inputs, training=False)
        return pool(outputs[names.SEQUENCE_OUTPUT], inputs[names.INPUT_MASK], pooling,
                    normalize)

    def _layers_graph(self, segments, layers):
        inputs = self.preprocessor.pack(segments, pad_to_longest=True)
        outputs = self.encoder(inputs, training=False)[names.ENCODER_OUTPUTS]
        return {"layers": tf.stack([tf.cast(outputs[i], tf.float32) for i in layers]),
                names.INPUT_WORD_IDS: inputs[names.INPUT_WORD_IDS],  # [batch, len]
                names.INPUT_MASK: inputs[names.INPUT_MASK]}

    def _lengths_graph(self, *segments):
        """Word pieces per example, all segments together: `[batch]` int64 (the
        sort key: the special tokens and truncation would not change the order)."""
        tokenizer = self.preprocessor.tokenizer
        return tf.add_n([tokenizer.tokenize_pieces(s).row_lengths() for s in segments])

    def _function(self, num_segments, *settings):
        """One traced function per kind of call: a string vector per segment in,
        any batch size and length (no retracing)."""
        key = (num_segments,) + settings
        if key not in self._functions:
            if settings[0] == "lengths":
                body = self._lengths_graph
            elif settings[0] == "layers":
                body = lambda *s: self._layers_graph(list(s), settings[1])  # noqa: E731
            else:
                body = lambda *s: self.embedding_graph(list(s), *settings)  # noqa: E731
            self._functions[key] = tf.function(
                body, input_signature=[tf.TensorSpec([None], tf.string)] * num_segments,
                autograph=False)
        return self._functions[key]

    # ------------------------------------------------------------ batches

    def embed(self, examples, pooling=MEAN_POOLING, normalize=True, batch_size=32,
              progress=False):
        """Sentence embeddings, float32 `[n, H]` in the examples' order.

        `examples`: strings (or UTF-8 bytes), `(text_a, text_b)` pairs or `Example`s.
        Examples are batched by similar length (singles and pairs apart), so batches
        pad little; the rows come back in the input order.
        """
        check_pooling(pooling)
        check_batch_size(batch_size)
        examples = _as_examples(examples)
        vectors = np.zeros([len(examples), self.hidden_size], np.float32)
        bar = _progress_bar(len(examples), progress)
        for rows, columns in _groups(examples):
            lengths = self._function(len(columns), "lengths")(
                *[tf.constant(c) for c in columns]).numpy()
            order = np.argsort(lengths, kind="stable")  # shortest first
            rows, columns = rows[order], [c[order] for c in columns]
            function = self._function(len(columns), pooling, bool(normalize))
            for start in range(0, len(rows), batch_size):
                batch = slice(start, start + batch_size)
                vectors[rows[batch]] = function(*[tf.constant(c[batch]) for c in columns])
                bar.add(len(rows[batch]))
        return vectors

    def token_features(self, examples, layers=DEFAULT_LAYERS, batch_size=32,
                       progress=False):
        """Yields, for each example in order, `(tokens, values)`: the real tokens
        (`[CLS]` … `[SEP]`, as packed) and float32 `[len(layers), tokens, H]`, the
        vectors of each requested layer (`encoder_outputs[i]`). Batches follow the
        input order (a stream: nothing waits for the end)."""
        examples = _as_examples(examples)
        layers = parse_layers(layers, self.num_layers)
        return self._token_features(examples, layers, check_batch_size(batch_size),
                                    progress)

    def _token_features(self, examples, layers, batch_size, progress):
        vocab = self.preprocessor.vocabulary
        bar = _progress_bar(len(examples), progress)
        for start in range(0, len(examples), batch_size):
            batch = examples[start:start + batch_size]
            results = [None] * len(batch)
            for rows, columns in _groups(batch):
                out = self._function(len(columns), "layers", layers)(
                    *[tf.constant(c) for c in columns])
                values = out["layers"].numpy()  # [layers, rows, len, H]
                ids = out[names.INPUT_WORD_IDS].numpy()
                lengths = out[names.INPUT_MASK].numpy().sum(axis=1)
                for j, row in enumerate(rows):
                    n = lengths[j]
                    results[row] = ([vocab[i] for i in ids[j, :n]], values[:, j, :n])
            yield from results
            bar.add(len(batch))


def _as_examples(examples):
    out = []
    for example in examples:
        if isinstance(example, (str, bytes)):
            out.append(Example(example))
        elif isinstance(example, (tuple, list)) and len(example) in (1, 2) and all(
                isinstance(t, (str, bytes)) or t is None for t in example):
            out.append(Example(*example))
        else:
            raise TypeError(f"An example is a string or a (text_a, text_b) pair, not "
                            f"{example!r}.")
    return out


def _groups(examples):
    """Row indexes and text columns (object arrays) of the single texts, then of the
    pairs: a batch never mixes them (a pair packs a second [SEP])."""
    for pairs in (False, True):
        rows = np.array([i for i, e in enumerate(examples)
                         if (e.text_b is not None) == pairs], np.int64)
        if len(rows):
            columns = [np.array([examples[i].text_a for i in rows], object)]
            if pairs:
                columns.append(np.array([examples[i].text_b for i in rows], object))
            yield rows, columns


def check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be a positive integer.")
    return batch_size


class _NoBar:
    def add(self, count):
        pass


def _progress_bar(total, progress):
    return keras.utils.Progbar(total, unit_name="example") if progress and total else \
        _NoBar()
