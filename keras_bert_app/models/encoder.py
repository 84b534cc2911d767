"""`BertEncoder`: the BERT network with the TF Hub encoder interface."""

import keras

from keras_bert_app import names
from keras_bert_app.config import BertConfig
from keras_bert_app.layers.embeddings import BertEmbeddings
from keras_bert_app.layers.initializers import TruncatedNormal
from keras_bert_app.layers.transformer import BertTransformerBlock
from keras_bert_app.layers.precision import keep_model_dtype_policy


def encoder_inputs(prefix_shape=()):
    """Symbolic int32 inputs of the encoder interface, `[batch, *prefix_shape, seq]`."""
    return {
        name: keras.Input(shape=tuple(prefix_shape) + (None,), dtype="int32", name=name)
        for name in names.ENCODER_INPUTS
    }


@keras.saving.register_keras_serializable(package="keras_bert_app")
class BertEncoder(keras.Model):
    """BERT encoder: embeddings, post-LN transformer layers and the pooler.

    Inputs are a dict of int32 `[batch, seq]` tensors `input_word_ids`, `input_mask`
    (1 on real tokens) and `input_type_ids`. Outputs are a dict:
    `sequence_output [batch, seq, H]`, `pooled_output [batch, H]` (dense + tanh on the
    first token) and `encoder_outputs`, a list with one `[batch, seq, H]` per layer.
    Padding keys are masked out of attention, so the outputs at real positions do not
    depend on how much padding follows.

    Args:
        config: a `BertConfig` (or its dict).
        dtype: dtype policy of the layers (e.g. `"mixed_bfloat16"`); None uses the
            global policy.
        remat: rematerialise each transformer block: its internals are recomputed
            in the backward pass rather than kept, so training holds one
            `[batch, seq, H]` tensor per layer instead of all the block's
            activations (the attention probabilities alone are
            `[batch, heads, seq, seq]`), for one more forward pass of the blocks.
            Gradients are unchanged, dropout included. A training setting: the
            weights are the same, and model directories are written without it.

    Example:
    >>> encoder = BertEncoder(BertConfig.from_preset("bert_tiny", vocab_size=100))
    >>> ids = keras.ops.ones((2, 6), "int32")
    >>> out = encoder({"input_word_ids": ids, "input_mask": ids,
    ...                "input_type_ids": ids * 0})
    >>> tuple(out["pooled_output"].shape)
    (2, 128)
    """

    def __init__(self, config, dtype=None, remat=False, **kwargs):
        if isinstance(config, dict):
            config = BertConfig.from_dict(config)
        if not isinstance(config, BertConfig):
            raise TypeError(f"BertEncoder needs a BertConfig, got {type(config).__name__}.")

        # === Layers ===
        embeddings = BertEmbeddings(
            vocab_size=config.vocab_size, hidden_size=config.hidden_size,
            max_position_embeddings=config.max_position_embeddings,
            type_vocab_size=config.type_vocab_size,
            embedding_size=config.embedding_size, dropout=config.hidden_dropout_prob,
            layer_norm_eps=config.layer_norm_eps,
            initializer_range=config.initializer_range, dtype=dtype, name="embeddings")

        def block(name):
            return BertTransformerBlock(
                num_heads=config.num_attention_heads, head_size=config.head_size,
                intermediate_size=config.intermediate_size,
                hidden_act=config.hidden_act,
                hidden_dropout=config.hidden_dropout_prob,
                attention_dropout=config.attention_probs_dropout_prob,
                layer_norm_eps=config.layer_norm_eps,
                initializer_range=config.initializer_range, remat=remat, dtype=dtype,
                name=name)

        if config.share_layers:
            shared = block("transformer_shared")
            blocks = [shared] * config.num_hidden_layers
        else:
            blocks = [block(f"transformer_layer_{i}")
                      for i in range(config.num_hidden_layers)]
        pooler = keras.layers.Dense(
            config.hidden_size, activation="tanh",
            kernel_initializer=TruncatedNormal(
                stddev=config.initializer_range),
            dtype=dtype, name="pooler")

        # === Functional graph ===
        inputs = encoder_inputs()
        x = embeddings(inputs[names.INPUT_WORD_IDS], inputs[names.INPUT_TYPE_IDS])
        layer_outputs = []
        for layer in blocks:
            x = layer(x, inputs[names.INPUT_MASK])  # [batch, seq, H]
            layer_outputs.append(x)
        pooled = pooler(x[:, 0, :])  # [batch, H]
        super().__init__(
            inputs=inputs,
            outputs={names.SEQUENCE_OUTPUT: x, names.POOLED_OUTPUT: pooled,
                     names.ENCODER_OUTPUTS: layer_outputs},
            dtype=dtype, **kwargs)
        keep_model_dtype_policy(self, dtype)

        # === Config ===
        self.config = config
        self.remat = remat
        self.embeddings = embeddings
        self.transformer_layers = blocks
        self.pooler = pooler

    @property
    def token_embedding(self):
        """The word-embedding layer (its table is tied to the MLM output)."""
        return self.embeddings.word_embeddings

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable,
                "dtype": keras.saving.serialize_keras_object(self.dtype_policy),
                "config": self.config.to_dict(), "remat": self.remat}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.saving.deserialize_keras_object(config["dtype"])
        return cls(**config)
