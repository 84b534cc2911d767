"""`BertTextPreprocessor`: raw strings (or pairs) → encoder inputs, as a Keras layer.

A preprocessing layer in keras-hub's sense: TensorFlow graph code that runs inside
`tf.data` on every Keras backend, attached to a task model so that
`model.fit(strings, labels)` works.
"""

import os

import keras
import numpy as np
import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.files import model_dir_files
from keras_bert_app.text.packing import TRUNCATION_STRATEGIES, pack_inputs
from keras_bert_app.text.text_config import TextConfig
from keras_bert_app.text.tokenizer import MAX_CHARS_PER_WORD, BertTokenizer
from keras_bert_app.text.vocab import load_vocab

# Shortest padded length of a dynamically padded batch; longer ones double up to the
# sequence length. A handful of shapes: XLA compiles each once, not every batch.
MIN_PADDED_LENGTH = 16


def padding_lengths(sequence_length, minimum=MIN_PADDED_LENGTH):
    """The lengths dynamically padded batches take: powers of two from `minimum`,
    then `sequence_length` itself (`128` → `(16, 32, 64, 128)`)."""
    lengths, length = [], minimum
    while length < sequence_length:
        lengths.append(length)
        length *= 2
    return tuple(lengths) + (int(sequence_length),)


@keras.saving.register_keras_serializable(package="keras_bert_app")
class BertTextPreprocessor(keras.layers.Layer):
    """Tokenizes and packs text for a `BertEncoder`, inside `tf.data` or eagerly.

    Input: strings `[batch]` for single texts; a tuple `(text_a, text_b)` or a dict
    with `"text_a"`/`"text_b"` for pairs. Output: the three int32 encoder inputs
    `[batch, length]` (`[CLS] A [SEP] B [SEP]`, Google's tokenization). `length` is
    `sequence_length`, or with `dynamic_padding` the shortest of
    `padding_lengths(sequence_length)` that holds the batch's longest row: the same
    tokens, less padding to compute on.

    Called as `layer(x, y, sample_weight)` it returns `(inputs, y, sample_weight)`, so
    `dataset.map(layer)` preprocesses a labelled dataset. Eager calls return tensors of
    the current backend; inside `tf.data` / `tf.function` they return `tf.Tensor`s.
    The vocabulary is saved as an asset of `.keras` files.

    Args:
        vocabulary: path of `vocab.txt` or the list of tokens (id = position).
        do_lower_case: Google's `do_lower_case` (must match the vocabulary).
        sequence_length: maximum length, special tokens included.
        truncation: `round_robin` (Google's) or `waterfall`.
        dynamic_padding: pad each batch only as far as it needs (see above).
        max_chars_per_word: longer words become `[UNK]`.

    Example:
    >>> preprocessor = BertTextPreprocessor.from_model_dir(model_dir, sequence_length=64)
    >>> inputs = preprocessor(["a great movie", "dull"])  # dict of [2, 64] int32
    >>> pairs = preprocessor((["a question?"], ["a passage."]))
    """

    def __init__(self, vocabulary=None, do_lower_case=True, sequence_length=128,
                 truncation="round_robin", dynamic_padding=False,
                 max_chars_per_word=MAX_CHARS_PER_WORD, **kwargs):
        super().__init__(**kwargs)
        # Strings in, tf tensors through: Keras must neither convert the inputs to
        # backend tensors nor refuse non-tensor (list of str) arguments.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.built = True
        if truncation not in TRUNCATION_STRATEGIES:
            raise ValueError(f"truncation={truncation!r}; expected one of "
                             f"{list(TRUNCATION_STRATEGIES)}.")
        if isinstance(sequence_length, bool) or not isinstance(sequence_length, int) \
                or sequence_length < 3:
            raise ValueError(f"sequence_length={sequence_length!r} must be an integer "
                             "of at least 3 ([CLS], one piece, [SEP]).")
        self.do_lower_case = bool(do_lower_case)
        self.sequence_length = sequence_length
        self.truncation = truncation
        self.dynamic_padding = bool(dynamic_padding)
        self.max_chars_per_word = int(max_chars_per_word)
        self.tokenizer = None
        self._pack_functions = _PackFunctions()
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)

    @classmethod
    def from_model_dir(cls, model_dir, sequence_length=128, **kwargs):
        """The preprocessor of a (pre-trained or fine-tuned) model directory: its
        `vocab.txt` and `text_config.json`, checked to belong together, and a
        `sequence_length` that fits the model's position table."""
        from keras_bert_app.config import BertConfig

        vocab_file, text_file, config_file = model_dir_files(
            model_dir, names.VOCAB_FILE, names.TEXT_CONFIG_FILE, names.BERT_CONFIG_FILE)
        text_config = TextConfig.from_json_file(text_file)
        text_config.check_vocab(vocab_file)
        BertConfig.from_json_file(config_file).validate_sequence_length(sequence_length)
        return cls(vocabulary=vocab_file, do_lower_case=text_config.do_lower_case,
                   sequence_length=sequence_length,
                   max_chars_per_word=text_config.max_chars_per_word, **kwargs)

    def set_vocabulary(self, vocabulary):
        tokens = load_vocab(vocabulary) if isinstance(vocabulary, (str, os.PathLike)) \
            else [str(t) for t in vocabulary]
        # Eagerly, even when called while a function is traced: the tokenizer's tables
        # and frozen variables are input-side state that tf.data reads on the host.
        with tf.init_scope():
            self.tokenizer = BertTokenizer(tokens, lower_case=self.do_lower_case,
                                           max_chars_per_word=self.max_chars_per_word)
        self._pack_functions = _PackFunctions()  # traced with the old tokenizer

    @property
    def vocabulary(self):
        return None if self.tokenizer is None else list(self.tokenizer.vocab)

    @property
    def special_ids(self):
        return self._check_vocabulary().special_ids

    def _check_vocabulary(self):
        if self.tokenizer is None:
            raise ValueError(f"{self.name} has no vocabulary: pass `vocabulary` or "
                             "call set_vocabulary().")
        return self.tokenizer

    # --------------------------------------------------------------------- calling

    def __call__(self, x, y=None, sample_weight=None, **kwargs):
        # String tensors throughout: Keras refuses arguments mixing tensors with
        # arrays or lists.
        if isinstance(x, dict):
            x = {k: _string_tensor(v) for k, v in x.items()}
        elif isinstance(x, tuple):
            x = tuple(_string_tensor(v) for v in x)
        else:
            x = _string_tensor(x)
        return super().__call__(x, y=y, sample_weight=sample_weight, **kwargs)

    def call(self, x, y=None, sample_weight=None):
        segments = segments_of(x)
        if tf.inside_function():
            inputs = self.pack(segments)
        else:
            inputs = self._pack_eagerly(segments)
        return keras.utils.pack_x_y_sample_weight(inputs, y, sample_weight)

    def pack(self, segments, pad_to_longest=False):
        """String tensors `[batch]` (1 or 2 of them) → the encoder inputs, in graph.

        With `dynamic_padding`, `pad_to_longest` pads to the batch's longest row
        instead of its bucket: for a SavedModel, where a new shape costs nothing (no
        retracing, no XLA), and every padded position costs compute."""
        tokenizer = self._check_vocabulary()
        pieces = [tokenizer.tokenize_pieces(text) for text in segments]  # [batch, (pieces)]
        length = self.sequence_length
        if self.dynamic_padding:
            needed = tf.cast(len(pieces) + 1, tf.int64)
            for p in pieces:
                needed += tf.reduce_max(tf.concat([p.row_lengths(),
                                                   tf.zeros([1], tf.int64)], 0))
            needed = tf.minimum(needed, self.sequence_length)
            buckets = tf.constant(padding_lengths(self.sequence_length), tf.int64)
            # The first bucket that holds `needed` (the last one always does).
            length = needed if pad_to_longest else tf.gather(
                buckets, tf.argmax(tf.cast(buckets >= needed, tf.int32)))
        ids = tokenizer.special_ids
        return pack_inputs(pieces, length, start_of_sequence_id=ids[names.CLS_TOKEN],
                           end_of_segment_id=ids[names.SEP_TOKEN],
                           padding_id=ids[names.PAD_TOKEN], truncation=self.truncation)

    def batch_pack_function(self, num_segments, pad_to_longest=False):
        """`pack` as a `tf.function` of `num_segments` string tensors `[batch]`,
        traced once per layer, vocabulary and packing settings for every dataset
        that maps it (`text_dataset`: `fit`, `evaluate` and `predict` on text
        arrays, and the pipelines' classification batches).

        Why: `tf.data` traces each `map` function anew, and tracing `pack` (the
        tokenizer and packing graph) took ~0.4 s for single texts and ~1 s for pairs
        on 2 cores, for every such dataset. Mapping a function that calls this one
        traces only the call."""
        return self._pack_function("batch", int(num_segments), bool(pad_to_longest),
                                   input_signature=[tf.TensorSpec([None], tf.string)] *
                                   int(num_segments))

    def _pack_function(self, kind, num_segments, pad_to_longest, **function_args):
        # Keyed by what `pack` reads when it is traced, so that a changed attribute
        # traces again instead of packing with the old value. (A new vocabulary
        # empties the cache: `set_vocabulary`.)
        key = (kind, num_segments, pad_to_longest, self.sequence_length,
               self.dynamic_padding, self.truncation)
        functions = self._pack_functions.functions
        if key not in functions:
            def packed(*segments):
                with tf.device("cpu"):  # host-side input work, as in tf.data
                    return self.pack(list(segments), pad_to_longest=pad_to_longest)

            functions[key] = tf.function(packed, autograph=False, **function_args)
        return functions[key]

    def _pack_eagerly(self, segments):
        # One function per number of segments (string tensors [batch]: segments_of),
        # traced for any batch size: traced for the first call's size, the next call
        # of another size was traced again (~0.6 s of a multiple-choice run:
        # training's questions, then the prediction's).
        function = self._pack_function(
            "eager", len(segments), False,
            input_signature=[tf.TensorSpec([None], tf.string)] * len(segments))
        with tf.device("cpu"):
            inputs = function(*segments)
        if keras.backend.backend() == "tensorflow":
            return inputs
        return {k: keras.ops.convert_to_tensor(v.numpy()) for k, v in inputs.items()}

    # ------------------------------------------------- datasets of raw text

    def accepts(self, x):
        """Whether `x` is raw text this layer takes (a task model's `fit` asks)."""
        from keras_bert_app.text.text_dataset import is_text_input

        return is_text_input(x)

    def dataset(self, x, y=None, sample_weight=None, batch_size=32, shuffle=False,
                seed=None):
        """Raw text (arrays, or a `tf.data.Dataset` of raw-text batches) → a batched,
        preprocessed dataset of `(inputs, y, sample_weight)` for `fit`."""
        from keras_bert_app.text import text_dataset

        if isinstance(x, tf.data.Dataset):
            if y is not None or sample_weight is not None:
                raise ValueError("With a dataset as x, labels come from the dataset; "
                                 "y and sample_weight must be None.")
            return text_dataset.preprocess_dataset(self, x)
        return text_dataset.text_dataset(self, x, y, sample_weight, batch_size=batch_size,
                                         shuffle=shuffle, seed=seed)

    # --------------------------------------------------------------------- saving

    def get_config(self):
        # The vocabulary travels as an asset (save_assets), not in the JSON config.
        return {**super().get_config(), "do_lower_case": self.do_lower_case,
                "sequence_length": self.sequence_length, "truncation": self.truncation,
                "dynamic_padding": self.dynamic_padding,
                "max_chars_per_word": self.max_chars_per_word}

    def save_assets(self, dir_path):
        with open(os.path.join(dir_path, names.VOCAB_FILE), "w", encoding="utf-8") as f:
            f.write("\n".join(self._check_vocabulary().vocab) + "\n")

    def load_assets(self, dir_path):
        self.set_vocabulary(os.path.join(dir_path, names.VOCAB_FILE))

    def compute_output_spec(self, x, y=None, sample_weight=None):
        spec = keras.KerasTensor([None, None], dtype="int32")
        return {key: spec for key in names.ENCODER_INPUTS}


class _PackFunctions:
    """A layer's traced `pack` functions, kept out of TensorFlow's object tracking: as
    a dict attribute they would be tracked, and saving a SavedModel that holds the
    layer would refuse their non-string keys. A deep copy of the layer starts with
    none (each function calls the layer it was made for)."""

    def __init__(self):
        self.functions = {}

    def __deepcopy__(self, memo):
        return _PackFunctions()


def _string_tensor(value):
    if isinstance(value, (tf.Tensor, tf.RaggedTensor)):
        return value
    if isinstance(value, list):
        value = np.asarray(value, dtype=object)
    try:
        return tf.convert_to_tensor(value)
    except (ValueError, TypeError) as e:
        raise TypeError(f"Text inputs must be strings: {e}") from None


def segments_of(x):
    """The 1 or 2 string tensors `[batch]` of a preprocessor input: strings, a
    `(text_a, text_b)` tuple, or a dict keyed `text_a`/`text_b`."""
    if isinstance(x, dict):
        unknown = sorted(set(x) - set(names.TEXT_INPUTS))
        if unknown or names.TEXT_A not in x:
            raise ValueError(f"Text inputs are keyed {list(names.TEXT_INPUTS)} "
                             f"({names.TEXT_A!r} required); got the keys {sorted(x)}.")
        parts = [x[k] for k in names.TEXT_INPUTS if k in x]
    elif isinstance(x, tuple):
        if len(x) not in (1, 2):
            raise ValueError(f"A tuple of text inputs holds (text_a,) or (text_a, "
                             f"text_b); got {len(x)} parts.")
        parts = list(x)
    else:
        parts = [x]
    segments = []
    for part in parts:
        text = tf.convert_to_tensor(part)
        if text.dtype != tf.string:
            raise TypeError(f"Text inputs must be strings, got {text.dtype.name} "
                            f"(shape {text.shape}).")
        if text.shape.rank == 0:
            text = tf.reshape(text, [1])
        elif text.shape.rank == 2 and text.shape[1] == 1:
            text = tf.reshape(text, [-1])  # a [batch, 1] column, e.g. of a DataFrame
        elif text.shape.rank != 1:
            raise ValueError(f"Text inputs are string vectors [batch]; got shape "
                             f"{text.shape}. Give pairs as (text_a, text_b) or a "
                             f"{{'{names.TEXT_A}': …, '{names.TEXT_B}': …}} dict.")
        segments.append(text)
    if len(segments) == 2 and not tf.inside_function() and \
            segments[0].shape[0] != segments[1].shape[0]:
        raise ValueError(f"text_a has {segments[0].shape[0]} rows but text_b has "
                         f"{segments[1].shape[0]}: pairs need one of each per example.")
    return segments
