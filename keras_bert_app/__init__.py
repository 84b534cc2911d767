"""keras_bert_app: BERT from raw text to production, in Keras 3."""

import importlib

from keras_bert_app import layers
from keras_bert_app import models
from keras_bert_app import names
from keras_bert_app import training
from keras_bert_app.config import BertConfig
from keras_bert_app.model_dir import (load_classifier, load_encoder, load_pretrainer,
                                      save_classifier)

__version__ = "0.1.0"

# TensorFlow-only parts (tensorflow-text, SavedModel export) load on first use, so that
# the models import quickly on the JAX and PyTorch backends.
_LAZY = {
    "text": ("keras_bert_app.text", None),
    "export": ("keras_bert_app.export", None),
    "checkpoints": ("keras_bert_app.checkpoints", None),
    "data": ("keras_bert_app.data", None),
    "load_preprocessor": ("keras_bert_app.text.preprocessor", "load_preprocessor"),
}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'keras_bert_app' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module
