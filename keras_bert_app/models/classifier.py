"""`BertClassifier`: sentence / sentence-pair classification and regression."""

import keras

from keras_bert_app import names
from keras_bert_app.models.encoder import encoder_inputs
from keras_bert_app.models.task import BertTask, check_encoder


@keras.saving.register_keras_serializable(package="keras_bert_app")
class BertClassifier(BertTask):
    """Pooled output → dropout → dense: logits `[batch, num_classes]`, float32.

    `num_classes=1` is regression (e.g. STS-B): the single output is the prediction,
    and the default loss is mean squared error.

    Args:
        encoder: a `BertEncoder`.
        num_classes: number of classes; 1 for regression.
        dropout: dropout before the output layer; None uses the encoder's
            `hidden_dropout_prob`.
        dtype: dtype policy of the head; None uses the encoder's.

    Example:
    >>> classifier = BertClassifier(encoder, num_classes=3)
    >>> classifier.compile(keras.optimizers.AdamW(2e-5))  # sparse CE + accuracy
    """

    def __init__(self, encoder, num_classes, dropout=None, dtype=None, **kwargs):
        check_encoder(encoder, "BertClassifier")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"BertClassifier: num_classes={num_classes!r} must be a "
                             "positive integer (1 for regression).")
        config = encoder.config
        dtype = dtype or encoder.dtype_policy
        rate = config.hidden_dropout_prob if dropout is None else dropout

        # === Layers ===
        dropout_layer = keras.layers.Dropout(rate, dtype=dtype, name="classifier_dropout")
        output_layer = keras.layers.Dense(
            num_classes, kernel_initializer=keras.initializers.TruncatedNormal(
                stddev=config.initializer_range),
            dtype="float32", name="logits")

        # === Functional graph ===
        inputs = encoder_inputs()
        pooled = encoder(inputs)[names.POOLED_OUTPUT]  # [batch, H]
        logits = output_layer(dropout_layer(pooled))  # [batch, num_classes]
        super().__init__(inputs=inputs, outputs=logits, dtype=dtype, **kwargs)

        # === Config ===
        self._finish_init(encoder, num_classes=num_classes, dropout=dropout)

    def default_loss(self):
        if self.num_classes == 1:
            return keras.losses.MeanSquaredError()
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def default_metrics(self):
        if self.num_classes == 1:
            return [keras.metrics.MeanAbsoluteError(name="mean_absolute_error")]
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
