"""Backend-agnostic BERT layers, written with `keras.ops` only."""

from keras_bert_app.layers.activations import get_activation
from keras_bert_app.layers.attention import BertSelfAttention
from keras_bert_app.layers.embeddings import BertEmbeddings
from keras_bert_app.layers.masked_lm_head import BertMaskedLMHead
from keras_bert_app.layers.transformer import BertTransformerBlock
