"""Multi-head self-attention with a padding mask and a float32 softmax."""

import math

import keras
from keras import ops

# Added to the logits of padding keys. Any large negative value zeroes their softmax
# weight in float32 (the softmax always runs in float32 here).
_MASKED_LOGIT = -1e9


@keras.saving.register_keras_serializable(package="keras_bert_app")
class BertSelfAttention(keras.layers.Layer):
    """BERT's multi-head self-attention, output projection included.

    Query, key, value and output are `[hidden, hidden]` dense layers, the layout of
    Google's and Hugging Face's checkpoints. Written here rather than using
    `keras.layers.MultiHeadAttention` because BERT needs its softmax in float32 under
    mixed precision and its attention dropout independent of the residual dropout.

    Args:
        num_heads: number of attention heads.
        head_size: width of each head; hidden = num_heads * head_size.
        dropout: dropout rate on the attention probabilities.
        initializer_range: stddev of the truncated-normal kernel initializer.

    Call args:
        x: `[batch, seq, hidden]`.
        padding_mask: `[batch, seq]`, 1 (or True) for real tokens, 0 for padding.

    Returns `[batch, seq, hidden]`.

    Example:
    >>> layer = BertSelfAttention(num_heads=2, head_size=4)
    >>> x = keras.ops.ones((2, 5, 8))
    >>> tuple(layer(x, keras.ops.ones((2, 5))).shape)
    (2, 5, 8)
    """

    def __init__(self, num_heads, head_size, dropout=0.0, initializer_range=0.02,
                 **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.head_size = head_size
        self.dropout = dropout
        self.initializer_range = initializer_range

        hidden = num_heads * head_size
        dense = lambda name: keras.layers.Dense(
            hidden, kernel_initializer=keras.initializers.TruncatedNormal(
                stddev=initializer_range),
            dtype=self.dtype_policy, name=name)
        self.query_dense = dense("query")
        self.key_dense = dense("key")
        self.value_dense = dense("value")
        self.output_dense = dense("output")
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=self.dtype_policy,
                                                  name="attention_dropout")

    def build(self, x_shape, padding_mask_shape=None):
        for layer in (self.query_dense, self.key_dense, self.value_dense,
                      self.output_dense):
            layer.build(x_shape)

    def _split_heads(self, x):
        # [batch, seq, hidden] -> [batch, seq, heads, head_size]
        batch, seq = ops.shape(x)[0], ops.shape(x)[1]
        return ops.reshape(x, (batch, seq, self.num_heads, self.head_size))

    def call(self, x, padding_mask, training=None):
        batch, seq = ops.shape(x)[0], ops.shape(x)[1]
        # Scaling the query rather than the [seq, seq] scores is cheaper.
        query = self._split_heads(self.query_dense(x)) * ops.cast(
            1.0 / math.sqrt(self.head_size), self.compute_dtype)
        key = self._split_heads(self.key_dense(x))
        value = self._split_heads(self.value_dense(x))

        scores = ops.einsum("bqnd,bknd->bnqk", query, key)  # [batch, heads, seq, seq]
        scores = ops.cast(scores, "float32")
        key_is_real = ops.cast(padding_mask, "bool")[:, None, None, :]  # [batch, 1, 1, seq]
        scores = ops.where(key_is_real, scores, _MASKED_LOGIT)
        probs = ops.softmax(scores, axis=-1)
        probs = self.dropout_layer(probs, training=training)
        probs = ops.cast(probs, self.compute_dtype)

        context = ops.einsum("bnqk,bknd->bqnd", probs, value)  # [batch, seq, heads, size]
        context = ops.reshape(context, (batch, seq, self.num_heads * self.head_size))
        return self.output_dense(context)

    def compute_output_shape(self, x_shape, padding_mask_shape=None):
        return tuple(x_shape)

    def get_config(self):
        config = super().get_config()
        config.update(num_heads=self.num_heads, head_size=self.head_size,
                      dropout=self.dropout, initializer_range=self.initializer_range)
        return config
