"""`BertMultipleChoice`: score each of C candidate sequences, softmax across them."""

import keras
from keras import ops

from keras_bert_app import names
from keras_bert_app.layers.initializers import TruncatedNormal
from keras_bert_app.models.encoder import encoder_inputs
from keras_bert_app.models.task import BertTask, check_encoder
from keras_bert_app.layers.precision import keep_model_dtype_policy


@keras.saving.register_keras_serializable(package="keras_bert_app")
class BertMultipleChoice(BertTask):
    """Encodes every choice, pooled output → dropout → dense(1): logits `[batch, C]`.

    Inputs are the encoder's three tensors with a choice axis, int32
    `[batch, num_choices, seq]`; each choice is usually `[CLS] context [SEP] choice
    [SEP]`. The number of choices may differ from batch to batch.

    Args:
        encoder: a `BertEncoder`.
        dropout: dropout before the scoring layer; None uses the encoder's
            `hidden_dropout_prob`.
        dtype: dtype policy of the head; None uses the encoder's.

    Example:
    >>> mc = BertMultipleChoice(encoder)
    >>> mc.compile(keras.optimizers.AdamW(2e-5))  # labels: index of the right choice
    """

    def __init__(self, encoder, dropout=None, dtype=None, **kwargs):
        check_encoder(encoder, "BertMultipleChoice")
        config = encoder.config
        dtype = dtype or encoder.dtype_policy
        rate = config.hidden_dropout_prob if dropout is None else dropout

        # === Layers ===
        flatten = _FlattenChoices(dtype=dtype, name="flatten_choices")
        dropout_layer = keras.layers.Dropout(rate, dtype=dtype, name="choice_dropout")
        score_layer = keras.layers.Dense(
            1, kernel_initializer=TruncatedNormal(
                stddev=config.initializer_range),
            dtype="float32", name="choice_score")

        # === Functional graph ===
        inputs = encoder_inputs(prefix_shape=(None,))  # [batch, C, seq] each
        flat = {k: flatten(v) for k, v in inputs.items()}  # [batch * C, seq]
        pooled = encoder(flat)[names.POOLED_OUTPUT]  # [batch * C, H]
        scores = score_layer(dropout_layer(pooled))  # [batch * C, 1]
        logits = _UnflattenChoices(dtype="float32", name="unflatten_choices")(
            scores, inputs[names.INPUT_WORD_IDS])  # [batch, C]
        super().__init__(inputs=inputs, outputs=logits, dtype=dtype, **kwargs)
        keep_model_dtype_policy(self, dtype)

        # === Config ===
        self._finish_init(encoder, dropout=dropout)

    def default_loss(self):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def default_metrics(self):
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


@keras.saving.register_keras_serializable(package="keras_bert_app")
class _FlattenChoices(keras.layers.Layer):
    """`[batch, C, seq]` → `[batch * C, seq]`."""

    def call(self, x):
        return ops.reshape(x, (-1, ops.shape(x)[-1]))

    def compute_output_spec(self, x):
        return keras.KerasTensor((None, x.shape[-1]), dtype=x.dtype)


@keras.saving.register_keras_serializable(package="keras_bert_app")
class _UnflattenChoices(keras.layers.Layer):
    """Scores `[batch * C, 1]` → `[batch, C]`, C read from the choice inputs."""

    def call(self, scores, choice_ids):
        return ops.reshape(scores, (-1, ops.shape(choice_ids)[1]))

    def compute_output_spec(self, scores, choice_ids):
        return keras.KerasTensor((None, choice_ids.shape[1]), dtype=scores.dtype)
