"""`BertSpanLabeler`: start/end logits for extractive (SQuAD-style) QA."""

import keras

from keras_bert_app import names
from keras_bert_app.layers.dense import Dense
from keras_bert_app.layers.initializers import TruncatedNormal
from keras_bert_app.models.encoder import encoder_inputs
from keras_bert_app.models.task import BertTask, check_encoder
from keras_bert_app.layers.precision import keep_model_dtype_policy


@keras.saving.register_keras_serializable(package="keras_bert_app")
class BertSpanLabeler(BertTask):
    """Sequence output → dense(2): `start_logits` and `end_logits`, `[batch, seq]`.

    Labels for `fit` are a dict with the same keys holding token positions `[batch]`
    (0, the `[CLS]` position, for unanswerable questions). The default loss is the
    mean of the start and end cross-entropies, as in Google's `run_squad.py`.

    Args:
        encoder: a `BertEncoder`.
        dtype: dtype policy of the head; None uses the encoder's.

    Example:
    >>> qa = BertSpanLabeler(encoder)
    >>> qa.compile(keras.optimizers.AdamW(3e-5))
    """

    def __init__(self, encoder, dtype=None, **kwargs):
        check_encoder(encoder, "BertSpanLabeler")
        config = encoder.config
        dtype = dtype or encoder.dtype_policy

        # === Layers ===
        span_dense = Dense(
            2, kernel_initializer=TruncatedNormal(
                stddev=config.initializer_range),
            dtype="float32", name="span_logits")

        # === Functional graph ===
        inputs = encoder_inputs()
        sequence = encoder(inputs)[names.SEQUENCE_OUTPUT]  # [batch, seq, H]
        logits = span_dense(sequence)  # [batch, seq, 2]
        outputs = {names.START_LOGITS: logits[:, :, 0], names.END_LOGITS: logits[:, :, 1]}
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)
        keep_model_dtype_policy(self, dtype)

        # === Config ===
        self._finish_init(encoder)

    def default_loss(self):
        ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        return {names.START_LOGITS: ce, names.END_LOGITS: ce}

    def compile(self, optimizer="adam", loss="auto", metrics="auto", **kwargs):
        if loss == "auto" and "loss_weights" not in kwargs:
            kwargs["loss_weights"] = {names.START_LOGITS: 0.5, names.END_LOGITS: 0.5}
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)
