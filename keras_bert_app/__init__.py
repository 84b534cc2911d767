"""keras_bert_app: BERT from raw text to production, in Keras 3."""

from keras_bert_app import layers
from keras_bert_app import models
from keras_bert_app import names
from keras_bert_app.config import BertConfig

__version__ = "0.1.0"
