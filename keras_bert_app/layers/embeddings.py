"""BERT input embeddings: word + learned absolute position + segment type."""

import keras
from keras import ops

from keras_bert_app.layers.dense import Dense
from keras_bert_app.layers.initializers import TruncatedNormal
from keras_bert_app.layers.precision import float32_if_mixed


@keras.saving.register_keras_serializable(package="keras_bert_app")
class BertEmbeddings(keras.layers.Layer):
    """Sums word, position and segment embeddings, then LayerNorm and dropout.

    With `embedding_size` smaller than `hidden_size` (ALBERT factorisation) the tables
    are `embedding_size` wide and a dense projection maps the normalised sum to
    `hidden_size`.

    Args:
        vocab_size: rows of the word table.
        hidden_size: width of the output.
        max_position_embeddings: rows of the position table (longest sequence).
        type_vocab_size: rows of the segment table.
        embedding_size: width of the tables; None means `hidden_size`.
        dropout: dropout rate after LayerNorm.
        layer_norm_eps: LayerNorm epsilon.
        initializer_range: stddev of the truncated-normal initializer.

    Call args:
        word_ids: int `[batch, seq]`.
        type_ids: int `[batch, seq]`.

    Returns `[batch, seq, hidden_size]`.

    Example:
    >>> layer = BertEmbeddings(vocab_size=100, hidden_size=8,
    ...                        max_position_embeddings=16, type_vocab_size=2)
    >>> ids = keras.ops.ones((2, 5), "int32")
    >>> tuple(layer(ids, ids * 0).shape)
    (2, 5, 8)
    """

    def __init__(self, vocab_size, hidden_size, max_position_embeddings,
                 type_vocab_size, embedding_size=None, dropout=0.0,
                 layer_norm_eps=1e-12, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.embedding_size = embedding_size
        self.dropout = dropout
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range

        width = embedding_size or hidden_size
        initializer = TruncatedNormal(stddev=initializer_range)
        self.word_embeddings = keras.layers.Embedding(
            vocab_size, width, embeddings_initializer=initializer,
            dtype=self.dtype_policy, name="word_embeddings")
        self.type_embeddings = keras.layers.Embedding(
            type_vocab_size, width, embeddings_initializer=initializer,
            dtype=self.dtype_policy, name="token_type_embeddings")
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, dtype=float32_if_mixed(self.dtype_policy),
            name="layer_norm")
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=self.dtype_policy,
                                                  name="dropout")
        self.projection = None
        if width != hidden_size:
            self.projection = Dense(
                hidden_size, kernel_initializer=initializer, dtype=self.dtype_policy,
                name="embedding_projection")

    def build(self, word_ids_shape, type_ids_shape=None):
        width = self.embedding_size or self.hidden_size
        self.word_embeddings.build(word_ids_shape)
        self.type_embeddings.build(word_ids_shape)
        self.position_embeddings = self.add_weight(
            name="position_embeddings", shape=(self.max_position_embeddings, width),
            initializer=TruncatedNormal(stddev=self.initializer_range))
        self.layer_norm.build(tuple(word_ids_shape) + (width,))
        if self.projection is not None:
            self.projection.build(tuple(word_ids_shape) + (width,))

    @property
    def embedding_matrix(self):
        """The word table `[vocab_size, embedding_size]`, shared with the MLM output."""
        return self.word_embeddings.embeddings

    def call(self, word_ids, type_ids, training=None):
        static_length = word_ids.shape[1]
        if isinstance(static_length, int) and static_length > self.max_position_embeddings:
            raise ValueError(
                f"Input sequence length {static_length} exceeds "
                f"max_position_embeddings={self.max_position_embeddings}.")
        seq_length = ops.shape(word_ids)[1]
        positions = self.position_embeddings[:seq_length]  # [seq, E]
        x = (self.word_embeddings(word_ids) + self.type_embeddings(type_ids)
             + ops.cast(positions, self.compute_dtype)[None])  # [batch, seq, E]
        x = self.layer_norm(x)
        x = self.dropout_layer(ops.cast(x, self.compute_dtype), training=training)
        if self.projection is not None:
            x = self.projection(x)  # [batch, seq, H]
        return x

    def compute_output_shape(self, word_ids_shape, type_ids_shape=None):
        return tuple(word_ids_shape) + (self.hidden_size,)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size, hidden_size=self.hidden_size,
            max_position_embeddings=self.max_position_embeddings,
            type_vocab_size=self.type_vocab_size, embedding_size=self.embedding_size,
            dropout=self.dropout, layer_norm_eps=self.layer_norm_eps,
            initializer_range=self.initializer_range)
        return config
