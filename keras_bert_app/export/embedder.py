"""Exports the encoder of a model directory as a text-in sentence embedder for TF
Serving.

`serving_default` takes raw strings `text` (string `[batch]`, `batch` may be 0) and
returns `embedding`, float32 `[batch, hidden]`: the last layer pooled (`mean` over
real tokens, or the `cls` vector) and, if exported so, scaled to unit L2 norm —
exactly `pipelines.extract_features --pooling=… [--normalize]` (the same graph code,
`FeatureExtractor.embedding_graph`). The settings are saved as variables `pooling`,
`normalize` and `max_seq_length` for inspection.
"""

import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.export.serving_layout import (check_tensorflow_backend,
                                                  next_version_dir, save_export,
                                                  serving_variables, traced_for_saving,
                                                  text_warmup_requests,
                                                  write_warmup_requests)
from keras_bert_app.export.serving_ops import checked_export_dir
from keras_bert_app.feature_extraction import (EMBEDDING, MEAN_POOLING, FeatureExtractor,
                                               check_pooling)

# The embedder's one input: a single text per example, named as the NER export's and
# the preprocessing export's.
TEXT_INPUTS = (names.SERVING_TEXT_INPUT,)


class _EmbedderExport(tf.Module):
    """The SavedModel's root: `serve` (the `serving_default` signature) plus the
    settings as variables."""

    def __init__(self, extractor, pooling, normalize):
        super().__init__()
        # Not attributes: the Keras objects stay out of the SavedModel's object graph
        # (see serving_variables); the function closes over them.
        self._embed = lambda text: extractor.embedding_graph([text], pooling, normalize)
        # Its lookup tables and frozen variables are saved through it.
        self._tokenizer = extractor.preprocessor.tokenizer
        self.pooling = tf.Variable(pooling, trainable=False, name="pooling")
        self.normalize = tf.Variable(bool(normalize), trainable=False, name="normalize")
        self.max_seq_length = tf.Variable(extractor.preprocessor.sequence_length,
                                          trainable=False, name="max_seq_length")
        specs = {name: tf.TensorSpec([None], tf.string, name=name) for name in TEXT_INPUTS}
        # Plain graph code: no autograph (faster to trace and save).
        self.serve = tf.function(self._answer, input_signature=[specs], autograph=False)
        with traced_for_saving():  # the save reuses this trace
            self._variables = serving_variables(self.serve.get_concrete_function())

    def _answer(self, texts):
        return {EMBEDDING: self._embed(texts[names.SERVING_TEXT_INPUT])}  # [batch, H]


def export_embedder(export_base, model_dir, pooling=MEAN_POOLING, normalize=True,
                    max_seq_length=128, warmup_texts=None):
    """Writes a text-in sentence embedder as the next version under `export_base`.

    The SavedModel lands in `export_base/<n>/` (n: the next free version), so
    `tensorflow_model_server --model_base_path=export_base` serves it, with
    `assets.extra/tf_serving_warmup_requests` holding one request per warm-up text
    and one with all of them. It is checked (`check_serving_ops`: loads in stock TF
    Serving 2.19 and later) before it moves into place; a refused export leaves no
    version behind. Needs the TensorFlow Keras backend.

    Args:
        export_base: TF Serving's model base path.
        model_dir: a pre-trained or fine-tuned model directory (its encoder).
        pooling: `mean` (over real tokens) or `cls` (the first token's vector).
        normalize: scale each embedding to unit L2 norm.
        max_seq_length: word pieces per text, special tokens included (longer texts
            are truncated); at most the model's position table.
        warmup_texts: warm-up strings; None uses a few built-in English sentences.

    Returns:
        The version directory written.
    """
    check_tensorflow_backend("export_embedder")
    check_pooling(pooling)
    if not isinstance(normalize, bool):
        raise ValueError(f"normalize={normalize!r} must be True or False.")
    requests = text_warmup_requests(TEXT_INPUTS, warmup_texts)
    extractor = FeatureExtractor.from_model_dir(model_dir, max_seq_length=max_seq_length)
    module = _EmbedderExport(extractor, pooling, normalize)
    version_dir = next_version_dir(export_base)
    with checked_export_dir(version_dir) as scratch:
        save_export(module, scratch)
        write_warmup_requests(scratch, requests)
    return version_dir
