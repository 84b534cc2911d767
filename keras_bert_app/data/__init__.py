"""Pre-training data: instance creation (Google's algorithm) and dataset readers."""

from keras_bert_app.data.pretraining_data import (PretrainingDataConfig,
                                                  create_pretraining_data)
from keras_bert_app.data.pretraining_dataset import pretraining_dataset, read_metadata
