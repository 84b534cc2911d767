"""In-graph text processing: Google-exact tokenization, packing, preprocessing."""

from keras_bert_app.text.packing import pack_inputs
from keras_bert_app.text.preprocessing_layer import BertTextPreprocessor
from keras_bert_app.text.preprocessor import BertPreprocessor, load_preprocessor
from keras_bert_app.text.text_config import TextConfig
from keras_bert_app.text.tokenizer import BertTokenizer
from keras_bert_app.text.vocab import load_vocab
