"""BERT models in the Keras functional API: the encoder and its task models."""

from keras_bert_app.models.classifier import BertClassifier
from keras_bert_app.models.encoder import BertEncoder
from keras_bert_app.models.multiple_choice import BertMultipleChoice
from keras_bert_app.models.pretrainer import BertPretrainer
from keras_bert_app.models.span_labeler import BertSpanLabeler
from keras_bert_app.models.task import BertTask
from keras_bert_app.models.token_classifier import BertTokenClassifier
