"""Multi-head self-attention with a padding mask and a float32 softmax.

Two paths compute the same function:
- fused: `keras.ops.dot_product_attention`, which JAX runs with cuDNN / flash
  attention on GPUs and torch with its scaled_dot_product_attention. It has no
  dropout, so it runs whenever attention dropout is inactive: inference, export, and
  training with `attention_probs_dropout_prob=0`. Not on TensorFlow: Keras has no
  fused kernel there (the op is einsum-softmax-einsum plus a scale multiply and a bias
  add over the `[seq, seq]` scores), measured 1.01-1.27x slower than the explicit path
  without XLA and equal with it (benchmarks/attention_benchmark.py, RESULTS.md).
- explicit: einsum, float32 softmax, dropout on the probabilities, einsum. Training
  with attention dropout takes it, so BERT's dropout on attention probabilities stays
  exactly what Google's and Hugging Face's code do.
"""

import math

import keras
from keras import ops

from keras_bert_app.layers.dense import Dense
from keras_bert_app.layers.initializers import TruncatedNormal

# Added to the logits of padding keys (Google's BERT adds -10000.0). Finite in float16
# and bfloat16, so a bias cast to the compute dtype never becomes -inf (a row of only
# padding keys would then give NaN); any real logit is so much larger that a padding
# key's softmax weight is exactly 0.0 in float32.
MASKED_LOGIT_BIAS = -10000.0


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
        dense = lambda name: Dense(
            hidden, kernel_initializer=TruncatedNormal(
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
        key_is_real = ops.cast(padding_mask, "bool")[:, None, None, :]  # [batch, 1, 1, seq]

        if (training and self.dropout > 0) or not _fused_path_helps(self.compute_dtype):
            context = self._attention_with_dropout(query, key, value, key_is_real,
                                                   training)
        else:
            # [batch, 1, 1, seq]: 0 on real keys, MASKED_LOGIT_BIAS on padding.
            bias = ops.where(key_is_real, 0.0, MASKED_LOGIT_BIAS)
            context = ops.dot_product_attention(query, key, value, bias=bias,
                                                scale=1.0)  # [batch, seq, heads, size]
        context = ops.reshape(context, (batch, seq, self.num_heads * self.head_size))
        return self.output_dense(context)

    def _attention_with_dropout(self, query, key, value, key_is_real, training):
        scores = ops.einsum("bqnd,bknd->bnqk", query, key)  # [batch, heads, seq, seq]
        scores = ops.cast(scores, "float32")
        scores = ops.where(key_is_real, scores, MASKED_LOGIT_BIAS)
        probs = ops.softmax(scores, axis=-1)
        probs = self.dropout_layer(probs, training=training)
        probs = ops.cast(probs, self.compute_dtype)
        return ops.einsum("bnqk,bknd->bqnd", probs, value)  # [batch, seq, heads, size]

    def compute_output_shape(self, x_shape, padding_mask_shape=None):
        return tuple(x_shape)

    def get_config(self):
        config = super().get_config()
        config.update(num_heads=self.num_heads, head_size=self.head_size,
                      dropout=self.dropout, initializer_range=self.initializer_range)
        return config


def _fused_path_helps(compute_dtype):
    """Whether `ops.dot_product_attention` is worth taking on this backend (see the
    module docstring; never on TensorFlow) and runs in `compute_dtype`: JAX's on a
    CPU multiplies float16 with float32 accumulation, which XLA's CPU dot refuses
    ("precision 'F16_F16_F32' is not supported")."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return False
    if compute_dtype != "float16" or backend != "jax":
        return True
    import jax

    return jax.default_backend() != "cpu"
