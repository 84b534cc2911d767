"""Pre-training data (instance creation, Google's algorithm; dataset readers) and
fine-tuning data (classification files, GLUE tasks)."""

from keras_bert_app.data.pretraining_data import (PretrainingDataConfig,
                                                  create_pretraining_data)
from keras_bert_app.data.pretraining_dataset import pretraining_dataset, read_metadata
from keras_bert_app.data.masking import DynamicMasker, MaskingSettings
from keras_bert_app.data.raw_text_dataset import raw_text_pretraining_dataset
from keras_bert_app.tf_data_options import dataset_options
from keras_bert_app.data.classification_data import (ClassificationExamples, ColumnSpec,
                                                      GlueTask, glue_task, read_examples)
