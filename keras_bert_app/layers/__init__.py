"""Backend-agnostic BERT layers, written with `keras.ops` (and, for TensorFlow
graphs without Grappler, one op from `tf_tracing`)."""

from keras_bert_app.layers.activations import get_activation
from keras_bert_app.layers.attention import BertSelfAttention
from keras_bert_app.layers.dense import Dense
from keras_bert_app.layers.embeddings import BertEmbeddings
from keras_bert_app.layers.masked_lm_head import BertMaskedLMHead
from keras_bert_app.layers.transformer import BertTransformerBlock
