"""`BertTokenClassifier`: one label per token (NER, POS tagging)."""

import keras

from keras_bert_app import names
from keras_bert_app.layers.dense import Dense
from keras_bert_app.layers.initializers import TruncatedNormal
from keras_bert_app.models.encoder import encoder_inputs
from keras_bert_app.models.task import BertTask, check_encoder
from keras_bert_app.layers.precision import keep_model_dtype_policy


@keras.saving.register_keras_serializable(package="keras_bert_app")
class BertTokenClassifier(BertTask):
    """Sequence output → dropout → dense: logits `[batch, seq, num_classes]`, float32.

    Labels for `fit` are `[batch, seq]` class ids; positions labelled
    `names.IGNORE_LABEL_ID` (-100: padding, special tokens, non-first word pieces)
    add nothing to the default loss.

    Args:
        encoder: a `BertEncoder`.
        num_classes: number of tags.
        dropout: dropout before the output layer; None uses the encoder's
            `hidden_dropout_prob`.
        dtype: dtype policy of the head; None uses the encoder's.

    Example:
    >>> tagger = BertTokenClassifier(encoder, num_classes=9)
    >>> tagger.compile(keras.optimizers.AdamW(5e-5))
    """

    def __init__(self, encoder, num_classes, dropout=None, dtype=None, **kwargs):
        check_encoder(encoder, "BertTokenClassifier")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"BertTokenClassifier: num_classes={num_classes!r} must be "
                             "an integer >= 2.")
        config = encoder.config
        dtype = dtype or encoder.dtype_policy
        rate = config.hidden_dropout_prob if dropout is None else dropout

        # === Layers ===
        dropout_layer = keras.layers.Dropout(rate, dtype=dtype, name="tagger_dropout")
        output_layer = Dense(
            num_classes, kernel_initializer=TruncatedNormal(
                stddev=config.initializer_range),
            dtype="float32", name="logits")

        # === Functional graph ===
        inputs = encoder_inputs()
        sequence = encoder(inputs)[names.SEQUENCE_OUTPUT]  # [batch, seq, H]
        logits = output_layer(dropout_layer(sequence))  # [batch, seq, num_classes]
        super().__init__(inputs=inputs, outputs=logits, dtype=dtype, **kwargs)
        keep_model_dtype_policy(self, dtype)

        # === Config ===
        self._finish_init(encoder, num_classes=num_classes, dropout=dropout)

    def default_loss(self):
        return keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=names.IGNORE_LABEL_ID)
