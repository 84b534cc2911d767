"""The masked-LM head: gather masked positions, transform, tied output projection."""

import keras
from keras import ops

from keras_bert_app.layers.activations import get_activation
from keras_bert_app.layers.initializers import TruncatedNormal
from keras_bert_app.layers.precision import float32_if_mixed


@keras.saving.register_keras_serializable(package="keras_bert_app")
class BertMaskedLMHead(keras.layers.Layer):
    """Predicts the vocabulary at `masked_positions` only.

    `logits = LayerNorm(act(dense(h))) @ E^T + bias`, where `E` is the word-embedding
    table when `embedding` is given (BERT ties them) or a weight of its own otherwise.
    Logits are float32 under every dtype policy. Computing them only at the masked
    positions (`[batch, P]`, not `[batch, seq]`) saves most of the vocabulary matmul.

    Args:
        vocab_size: output classes.
        embedding_size: width of the output projection (the word-table width).
        hidden_act: activation of the transform.
        layer_norm_eps: LayerNorm epsilon.
        initializer_range: stddev of the truncated-normal initializer.
        embedding: a `keras.layers.Embedding` whose table is the output projection.
            It is not part of the config: a model re-ties it when rebuilt.

    Call args:
        sequence_output: `[batch, seq, hidden]`.
        masked_positions: int `[batch, P]`.

    Returns logits `[batch, P, vocab_size]`, float32.

    Example:
    >>> head = BertMaskedLMHead(vocab_size=50, embedding_size=8)
    >>> h = keras.ops.ones((2, 5, 8))
    >>> tuple(head(h, keras.ops.zeros((2, 3), "int32")).shape)
    (2, 3, 50)
    """

    def __init__(self, vocab_size, embedding_size, hidden_act="gelu",
                 layer_norm_eps=1e-12, initializer_range=0.02, embedding=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.hidden_act = hidden_act
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.embedding = embedding

        self.transform_dense = keras.layers.Dense(
            embedding_size,
            kernel_initializer=TruncatedNormal(stddev=initializer_range),
            dtype=self.dtype_policy, name="transform")
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, dtype=float32_if_mixed(self.dtype_policy),
            name="transform_layer_norm")
        self._activation = get_activation(hidden_act)

    def build(self, sequence_output_shape, masked_positions_shape=None):
        shape = (None, None, sequence_output_shape[-1])
        self.transform_dense.build(shape)
        self.layer_norm.build(shape[:-1] + (self.embedding_size,))
        if self.embedding is None:
            self.output_kernel = self.add_weight(
                name="output_kernel", shape=(self.vocab_size, self.embedding_size),
                initializer=TruncatedNormal(
                    stddev=self.initializer_range))
        self.output_bias = self.add_weight(name="output_bias",
                                           shape=(self.vocab_size,),
                                           initializer="zeros")

    def call(self, sequence_output, masked_positions):
        positions = ops.cast(masked_positions, "int32")  # [batch, P]
        batch, predictions = ops.shape(positions)[0], ops.shape(positions)[1]
        seq_length = ops.shape(sequence_output)[1]
        # One flat gather of rows (cheaper forward and backward than take_along_axis,
        # which broadcasts the indices over the hidden axis).
        flat_positions = positions + ops.arange(batch, dtype="int32")[:, None] * seq_length
        flat_output = ops.reshape(sequence_output, (-1, ops.shape(sequence_output)[-1]))
        gathered = ops.take(flat_output, ops.reshape(flat_positions, (-1,)), axis=0)
        h = self.layer_norm(self._activation(self.transform_dense(gathered)))  # [batch*P, E]
        table = (self.embedding.embeddings if self.embedding is not None
                 else self.output_kernel)  # [vocab, E]
        h = ops.cast(h, self.compute_dtype)
        # [batch*P, vocab]: a plain matmul against the transposed table, which backends
        # run as one GEMM with a transposed operand (einsum copied the table here).
        logits = ops.matmul(h, ops.transpose(ops.cast(table, self.compute_dtype)))
        logits = ops.cast(logits, "float32") + ops.cast(self.output_bias, "float32")
        return ops.reshape(logits, (batch, predictions, self.vocab_size))

    def compute_output_shape(self, sequence_output_shape, masked_positions_shape):
        return tuple(masked_positions_shape) + (self.vocab_size,)

    def compute_output_spec(self, sequence_output, masked_positions):
        shape = tuple(masked_positions.shape) + (self.vocab_size,)
        return keras.KerasTensor(shape, dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, embedding_size=self.embedding_size,
                      hidden_act=self.hidden_act, layer_norm_eps=self.layer_norm_eps,
                      initializer_range=self.initializer_range)
        return config
