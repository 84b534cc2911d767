"""`BertPretrainer`: masked LM + next-sentence (or sentence-order) prediction."""

import keras
from keras import ops

from keras_bert_app import names
from keras_bert_app.layers.initializers import TruncatedNormal
from keras_bert_app.layers.masked_lm_head import BertMaskedLMHead
from keras_bert_app.models.encoder import encoder_inputs
from keras_bert_app.models.task import BertTask, check_encoder
from keras_bert_app.replicas import replica_context, sum_over_replicas
from keras_bert_app.layers.precision import keep_model_dtype_policy


@keras.saving.register_keras_serializable(package="keras_bert_app")
class BertPretrainer(BertTask):
    """BERT pre-training model with its loss and metrics built in.

    Inputs: the encoder's three int32 `[batch, seq]` tensors plus
    `masked_lm_positions [batch, P]`. Outputs: `mlm_logits [batch, P, vocab]` (the
    transform + tied-embedding head, logits only at the masked positions) and, with
    `next_sentence_prediction`, `nsp_logits [batch, 2]` from the pooled output. The
    same 2-way head serves NSP and ALBERT's sentence-order prediction; only the data
    differs (label 0 = B is the actual next / in order, 1 = random / swapped).

    `fit` takes `(features, labels)` where labels hold `masked_lm_ids`,
    `masked_lm_weights` and `next_sentence_labels` (`[batch]` or `[batch, 1]`). The loss
    is `sum(w * CE_mlm) / sum(w) + mean(CE_nsp)`; the logged metrics are `loss`,
    `masked_lm_loss` and `masked_lm_accuracy` (means over the masked positions,
    weighted by `masked_lm_weights`, as Google's evaluation computes them),
    `next_sentence_loss` and `next_sentence_accuracy` (means over examples).

    Args:
        encoder: a `BertEncoder`.
        next_sentence_prediction: add the NSP/SOP head and its loss; False trains the
            masked LM alone (RoBERTa-style).
        dtype: dtype policy of the heads; None uses the encoder's.

    Example:
    >>> encoder = BertEncoder(BertConfig.from_preset("bert_tiny", vocab_size=100))
    >>> pretrainer = BertPretrainer(encoder)
    >>> pretrainer.compile(optimizer="adam")
    """

    def __init__(self, encoder, next_sentence_prediction=True, dtype=None, **kwargs):
        check_encoder(encoder, "BertPretrainer")
        config = encoder.config
        dtype = dtype or encoder.dtype_policy

        # === Layers ===
        mlm_head = BertMaskedLMHead(
            vocab_size=config.vocab_size,
            embedding_size=config.effective_embedding_size,
            hidden_act=config.hidden_act, layer_norm_eps=config.layer_norm_eps,
            initializer_range=config.initializer_range,
            embedding=encoder.token_embedding, dtype=dtype, name="mlm_head")
        nsp_head = None
        if next_sentence_prediction:
            nsp_head = keras.layers.Dense(
                2, kernel_initializer=TruncatedNormal(
                    stddev=config.initializer_range),
                dtype="float32", name="nsp_head")

        # === Functional graph ===
        inputs = encoder_inputs()
        inputs[names.MASKED_LM_POSITIONS] = keras.Input(
            shape=(None,), dtype="int32", name=names.MASKED_LM_POSITIONS)
        encoded = encoder({k: inputs[k] for k in names.ENCODER_INPUTS})
        outputs = {names.MLM_LOGITS: mlm_head(encoded[names.SEQUENCE_OUTPUT],
                                              inputs[names.MASKED_LM_POSITIONS])}
        if nsp_head is not None:
            outputs[names.NSP_LOGITS] = nsp_head(encoded[names.POOLED_OUTPUT])
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)
        keep_model_dtype_policy(self, dtype)

        # === Config ===
        self._finish_init(encoder, next_sentence_prediction=next_sentence_prediction)
        self.mlm_head = mlm_head
        self.nsp_head = nsp_head
        self.masked_lm_loss_tracker = keras.metrics.Mean(name="masked_lm_loss")
        self.masked_lm_accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(
            name="masked_lm_accuracy")
        if next_sentence_prediction:
            self.next_sentence_loss_tracker = keras.metrics.Mean(name="next_sentence_loss")
            self.next_sentence_accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(
                name="next_sentence_accuracy")

    def compile(self, optimizer="adam", **kwargs):
        """Like `keras.Model.compile`, without `loss`: the pre-training loss is built in."""
        for key in ("loss", "loss_weights", "metrics", "weighted_metrics"):
            if kwargs.get(key) not in (None, "auto", [], {}):
                raise ValueError(
                    f"BertPretrainer.compile: `{key}` cannot be set; the masked-LM and "
                    "next-sentence losses and metrics are built into the model.")
            kwargs.pop(key, None)
        keras.Model.compile(self, optimizer=optimizer, **kwargs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                     training=True):
        if not isinstance(y, dict) or names.MASKED_LM_IDS not in y:
            raise ValueError(
                "BertPretrainer needs labels: a dict with "
                f"'{names.MASKED_LM_IDS}', '{names.MASKED_LM_WEIGHTS}' and "
                f"'{names.NEXT_SENTENCE_LABELS}' (use kba.data.pretraining_dataset).")
        mlm_logits = y_pred[names.MLM_LOGITS]  # [batch, P, vocab], float32
        mlm_ids = y[names.MASKED_LM_IDS]  # [batch, P]
        mlm_weights = ops.cast(y[names.MASKED_LM_WEIGHTS], "float32")  # [batch, P]
        mlm_ce = keras.losses.sparse_categorical_crossentropy(
            mlm_ids, mlm_logits, from_logits=True)  # [batch, P]
        # Under tf.distribute each replica sees part of the batch; dividing by the
        # weight total of the whole global batch (summed over replicas) makes the
        # summed gradients those of one device on the whole batch.
        context = replica_context()
        replicas, global_weight = 1, ops.sum(mlm_weights)
        if context is not None:
            replicas = context.num_replicas_in_sync
            global_weight, = sum_over_replicas([ops.stop_gradient(global_weight)], context)
        mlm_objective = ops.divide_no_nan(ops.sum(mlm_ce * mlm_weights) * replicas,
                                          global_weight)
        # Metrics as Google's run_pretraining evaluates them: the MLM loss averaged over
        # masked positions (weights), the NSP loss over examples. Weighting by the data
        # also makes each update wait for its batch: an unweighted scalar update adds
        # its count of 1 even when Keras' step then stops on an exhausted iterator,
        # which pulled `evaluate`'s means towards 0 by one phantom batch.
        self.masked_lm_loss_tracker.update_state(mlm_ce, sample_weight=mlm_weights)
        self.masked_lm_accuracy_tracker.update_state(mlm_ids, mlm_logits,
                                                     sample_weight=mlm_weights)
        loss = mlm_objective
        if self.next_sentence_prediction:
            nsp_logits = y_pred[names.NSP_LOGITS]  # [batch, 2]
            nsp_labels = ops.reshape(y[names.NEXT_SENTENCE_LABELS], (-1,))  # [batch]
            nsp_ce = keras.losses.sparse_categorical_crossentropy(
                nsp_labels, nsp_logits, from_logits=True)  # [batch]
            nsp_loss = ops.mean(nsp_ce)
            self.next_sentence_loss_tracker.update_state(nsp_ce)
            self.next_sentence_accuracy_tracker.update_state(nsp_labels, nsp_logits)
            loss = loss + nsp_loss
        # Regularisation losses added by layers, if any.
        if self.losses:
            loss = loss + ops.sum(self.losses)
        # The optimizer sums the replicas' gradients (Keras' built-in losses scale
        # the same way).
        return loss * (1.0 / replicas) if replicas > 1 else loss

