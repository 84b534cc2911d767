"""Exports a `BertPreprocessor` as a SavedModel with TF Hub's preprocessing interface."""

import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.export.serving_layout import save_export, traced_for_saving
from keras_bert_app.export.serving_ops import checked_export_dir
from keras_bert_app.text.preprocessor import BertPreprocessor, load_preprocessor
from keras_bert_app.text.text_config import TextConfig

# `bert_pack_inputs` is traced for this many segments (sentence pairs need 2).
MAX_SEGMENTS = 3

_STRINGS = tf.TensorSpec([None], tf.string)
# Every function below is plain graph code (no Python control flow on tensors); tracing
# without autograph makes export ~5x faster.


def _segment_spec(rank):
    # tokenize() output ([batch, words, pieces]) or a merged [batch, pieces].
    return tf.RaggedTensorSpec([None] * rank, tf.int32, ragged_rank=rank - 1,
                               row_splits_dtype=tf.int64)


class _Tokenize(tf.Module):
    """`.tokenize(strings)` and `.tokenize.get_special_tokens_dict()`."""

    def __init__(self, preprocessor):
        super().__init__()
        self._preprocessor = preprocessor

    @tf.function(input_signature=[_STRINGS], autograph=False)
    def __call__(self, text):
        return self._preprocessor.tokenize(text)

    @tf.function(input_signature=[], autograph=False)
    def get_special_tokens_dict(self):
        return self._preprocessor.get_special_tokens_dict()


class _PackInputs(tf.Module):
    """`.bert_pack_inputs([segment, ...], seq_length=N)`."""

    def __init__(self, preprocessor):
        super().__init__()
        self._preprocessor = preprocessor

    @tf.function(autograph=False)
    def __call__(self, segments, seq_length):
        return self._preprocessor.bert_pack_inputs(segments, seq_length)


class _PreprocessingExport(tf.Module):
    def __init__(self, preprocessor):
        super().__init__()
        self._preprocessor = preprocessor
        self.vocab_file = preprocessor.vocab_file
        self.do_lower_case = tf.Variable(preprocessor.text_config.do_lower_case,
                                         trainable=False, name="do_lower_case")
        self.default_seq_length = tf.Variable(preprocessor.default_seq_length,
                                              trainable=False, name="default_seq_length")
        self.tokenize = _Tokenize(preprocessor)
        self.bert_pack_inputs = _PackInputs(preprocessor)
        with traced_for_saving():  # the save reuses these traces
            for count in range(1, MAX_SEGMENTS + 1):
                for rank in (2, 3):
                    self.bert_pack_inputs.__call__.get_concrete_function(
                        [_segment_spec(rank)] * count, tf.TensorSpec([], tf.int32))

    @tf.function(input_signature=[_STRINGS], autograph=False)
    def __call__(self, text):
        return self._preprocessor(text)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string,
                                                name=names.SERVING_TEXT_INPUT)],
                 autograph=False)
    def serve(self, text):
        return self._preprocessor(text)


def export_preprocessing(export_path, preprocessor):
    """Writes `preprocessor` as a SavedModel at `export_path`.

    The SavedModel loads with `tf.saved_model.load` in a process that imports only
    `tensorflow` and `tensorflow_text`. Its root call, `.tokenize`,
    `.tokenize.get_special_tokens_dict()` and `.bert_pack_inputs` follow TF Hub's BERT
    preprocessing interface; `serving_default` takes `text` (strings `[batch]`) for TF
    Serving. The vocabulary is stored in `assets/`.

    It is written beside `export_path`, checked by `check_serving_ops` (loads in stock
    TF Serving 2.19 and later) and only then moved into place: a refused export raises
    ValueError and leaves nothing behind.
    """
    module = _PreprocessingExport(preprocessor)
    with checked_export_dir(export_path) as scratch:
        save_export(module, scratch)
    return export_path


def build_preprocessor(vocab_file=None, do_lower_case=None, init_model_dir=None,
                       default_seq_length=128, truncation="round_robin"):
    """A preprocessor from a model directory, or from a vocabulary and its casing."""
    if init_model_dir:
        if vocab_file:
            raise ValueError("Give a model directory or a vocabulary file, not both.")
        preprocessor = load_preprocessor(init_model_dir, default_seq_length, truncation)
        if (do_lower_case is not None
                and do_lower_case != preprocessor.text_config.do_lower_case):
            raise ValueError(
                f"do_lower_case={do_lower_case} contradicts {init_model_dir}, whose "
                f"vocabulary is do_lower_case={preprocessor.text_config.do_lower_case}.")
        return preprocessor
    if not vocab_file or do_lower_case is None:
        raise ValueError("A preprocessor needs a model directory, or a vocabulary file "
                         "and do_lower_case.")
    return BertPreprocessor(vocab_file, TextConfig.for_vocab(vocab_file, do_lower_case),
                            default_seq_length=default_seq_length, truncation=truncation)
