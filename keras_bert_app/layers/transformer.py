"""The post-LayerNorm transformer block of BERT."""

import keras
from keras import ops

from keras_bert_app.layers.activations import get_activation
from keras_bert_app.layers.attention import BertSelfAttention
from keras_bert_app.layers.dense import Dense
from keras_bert_app.layers.initializers import TruncatedNormal
from keras_bert_app.layers.precision import float32_if_mixed
from keras_bert_app.layers.remat import rematerialized_call


@keras.saving.register_keras_serializable(package="keras_bert_app")
class BertTransformerBlock(keras.layers.Layer):
    """Self-attention and feed-forward sublayers, each `LayerNorm(x + dropout(f(x)))`.

    Post-LN as in the original BERT. Under mixed precision the residual sums and
    LayerNorms run in float32 and the block returns float32; the dense layers of the
    next block cast back to the compute dtype.

    Args:
        num_heads: attention heads.
        head_size: width of each head.
        intermediate_size: width of the feed-forward layer.
        hidden_act: activation name of the feed-forward layer (see `activations`).
        hidden_dropout: dropout on each residual branch.
        attention_dropout: dropout on attention probabilities.
        layer_norm_eps: LayerNorm epsilon.
        initializer_range: stddev of the truncated-normal kernel initializer.
        remat: recompute the block's internals in the backward pass instead of
            keeping them (`layers.remat`): only the block's input waits for the
            backward pass, for one more forward pass of the block. The gradients,
            dropout included, are the same as without.

    Call args:
        x: `[batch, seq, hidden]`.
        padding_mask: `[batch, seq]`, 1 for real tokens.

    Returns `[batch, seq, hidden]`.

    Example:
    >>> block = BertTransformerBlock(num_heads=2, head_size=4, intermediate_size=16)
    >>> x = keras.ops.ones((2, 5, 8))
    >>> tuple(block(x, keras.ops.ones((2, 5))).shape)
    (2, 5, 8)
    """

    def __init__(self, num_heads, head_size, intermediate_size, hidden_act="gelu",
                 hidden_dropout=0.0, attention_dropout=0.0, layer_norm_eps=1e-12,
                 initializer_range=0.02, remat=False, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.head_size = head_size
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout = hidden_dropout
        self.attention_dropout = attention_dropout
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.remat = remat

        hidden = num_heads * head_size
        initializer = TruncatedNormal(stddev=initializer_range)
        norm_dtype = float32_if_mixed(self.dtype_policy)
        self.attention = BertSelfAttention(
            num_heads, head_size, dropout=attention_dropout,
            initializer_range=initializer_range, dtype=self.dtype_policy,
            name="attention")
        self.attention_output_dropout = keras.layers.Dropout(
            hidden_dropout, dtype=self.dtype_policy, name="attention_output_dropout")
        self.attention_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, dtype=norm_dtype, name="attention_layer_norm")
        self.intermediate_dense = Dense(
            intermediate_size, kernel_initializer=initializer, dtype=self.dtype_policy,
            name="intermediate")
        self.output_dense = Dense(
            hidden, kernel_initializer=initializer, dtype=self.dtype_policy,
            name="output")
        self.output_dropout = keras.layers.Dropout(
            hidden_dropout, dtype=self.dtype_policy, name="output_dropout")
        self.output_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, dtype=norm_dtype, name="output_layer_norm")
        self._activation = get_activation(hidden_act)

    def build(self, x_shape, padding_mask_shape=None):
        x_shape = tuple(x_shape)
        self.attention.build(x_shape)
        self.attention_layer_norm.build(x_shape)
        self.intermediate_dense.build(x_shape)
        self.output_dense.build(x_shape[:-1] + (self.intermediate_size,))
        self.output_layer_norm.build(x_shape)

    def call(self, x, padding_mask, training=None):
        if not self.remat:
            return self._sublayers(x, padding_mask, training)
        # `training` is passed on as a plain bool: the recompute runs in the backward
        # pass, outside the call context Keras would otherwise take it from.
        training = bool(training)
        return rematerialized_call(
            self, lambda x: self._sublayers(x, padding_mask, training), x)

    def _sublayers(self, x, padding_mask, training):
        residual_dtype = self.attention_layer_norm.compute_dtype
        attention = self.attention(x, padding_mask, training=training)
        attention = self.attention_output_dropout(attention, training=training)
        x = self.attention_layer_norm(
            ops.cast(x, residual_dtype) + ops.cast(attention, residual_dtype))

        hidden = self._activation(self.intermediate_dense(x))  # [batch, seq, intermediate]
        output = self.output_dropout(self.output_dense(hidden), training=training)
        return self.output_layer_norm(x + ops.cast(output, residual_dtype))

    def compute_output_shape(self, x_shape, padding_mask_shape=None):
        return tuple(x_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads, head_size=self.head_size,
            intermediate_size=self.intermediate_size, hidden_act=self.hidden_act,
            hidden_dropout=self.hidden_dropout,
            attention_dropout=self.attention_dropout,
            layer_norm_eps=self.layer_norm_eps,
            initializer_range=self.initializer_range, remat=self.remat)
        return config
