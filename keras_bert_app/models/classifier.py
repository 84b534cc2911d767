"""`BertClassifier`: sentence / sentence-pair classification and regression."""

import keras

from keras_bert_app import names
from keras_bert_app.layers.initializers import TruncatedNormal
from keras_bert_app.models.encoder import encoder_inputs
from keras_bert_app.models.task import BertTask, check_encoder, model_dir_loader
from keras_bert_app.layers.precision import keep_model_dtype_policy


@keras.saving.register_keras_serializable(package="keras_bert_app")
class BertClassifier(BertTask):
    """Pooled output → dropout → dense: logits `[batch, num_classes]`, float32.

    `num_classes=1` is regression (e.g. STS-B): the single output is the prediction,
    and the default loss is mean squared error. `multi_label=True` makes each class
    an independent yes/no (sigmoid cross-entropy on multi-hot labels).

    With a `preprocessor` (a `BertTextPreprocessor`) the classifier takes raw text in
    `fit`, `evaluate` and `predict`; `from_model_dir` builds encoder, new head and
    preprocessor from a pre-trained model directory.

    Args:
        encoder: a `BertEncoder`.
        num_classes: number of classes; 1 for regression.
        multi_label: classes are not exclusive (sigmoid per class).
        dropout: dropout before the output layer; None uses the encoder's
            `hidden_dropout_prob`.
        preprocessor: a `BertTextPreprocessor`, or None (encoder inputs only).
        dtype: dtype policy of the head; None uses the encoder's.

    Example:
    >>> classifier = BertClassifier.from_model_dir(model_dir, num_classes=2)
    >>> classifier.compile(keras.optimizers.AdamW(2e-5))  # sparse CE + accuracy
    >>> classifier.fit(["a great film", "a dull film"], [1, 0], epochs=3)
    >>> classifier.predict(["what a film"])  # logits [1, 2]
    """

    def __init__(self, encoder, num_classes, multi_label=False, dropout=None,
                 preprocessor=None, dtype=None, **kwargs):
        check_encoder(encoder, "BertClassifier")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"BertClassifier: num_classes={num_classes!r} must be a "
                             "positive integer (1 for regression).")
        if multi_label and num_classes < 2:
            raise ValueError("BertClassifier: multi_label needs num_classes >= 2.")
        config = encoder.config
        dtype = dtype or encoder.dtype_policy
        rate = config.hidden_dropout_prob if dropout is None else dropout

        # === Layers ===
        dropout_layer = keras.layers.Dropout(rate, dtype=dtype, name="classifier_dropout")
        output_layer = keras.layers.Dense(
            num_classes, kernel_initializer=TruncatedNormal(
                stddev=config.initializer_range),
            dtype="float32", name="logits")

        # === Functional graph ===
        inputs = encoder_inputs()
        pooled = encoder(inputs)[names.POOLED_OUTPUT]  # [batch, H]
        logits = output_layer(dropout_layer(pooled))  # [batch, num_classes]
        super().__init__(inputs=inputs, outputs=logits, dtype=dtype, **kwargs)
        keep_model_dtype_policy(self, dtype)

        # === Config ===
        self._finish_init(encoder, preprocessor=preprocessor, num_classes=num_classes,
                          multi_label=bool(multi_label), dropout=dropout)

    @property
    def problem_type(self):
        if self.num_classes == 1:
            return names.REGRESSION
        return names.MULTI_LABEL if self.multi_label else names.SINGLE_LABEL

    @classmethod
    def from_model_dir(cls, model_dir, num_classes=None, multi_label=False,
                       sequence_length=None, dropout=None, dtype=None,
                       dynamic_padding=True):
        """Encoder + head + text preprocessor from a model directory.

        A pre-trained directory gives the encoder; the head is new, with
        `num_classes` outputs, and `sequence_length` defaults to 128. A fine-tuned
        classifier directory (`run_classifier`'s `--model_dir`) gives the whole
        classifier: `num_classes`, when given, must match it, and the sequence length
        it was trained with is the default. The preprocessor pads dynamically unless
        `dynamic_padding=False`.
        """
        return model_dir_loader("BertClassifier")(
            cls, model_dir, num_classes=num_classes, multi_label=multi_label,
            sequence_length=sequence_length, dropout=dropout, dtype=dtype,
            dynamic_padding=dynamic_padding)

    def default_loss(self):
        if self.num_classes == 1:
            return keras.losses.MeanSquaredError()
        if self.multi_label:
            return keras.losses.BinaryCrossentropy(from_logits=True)
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def default_metrics(self):
        if self.num_classes == 1:
            return [keras.metrics.MeanAbsoluteError(name="mean_absolute_error")]
        if self.multi_label:
            return [keras.metrics.BinaryAccuracy(name="binary_accuracy", threshold=0.0)]
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
