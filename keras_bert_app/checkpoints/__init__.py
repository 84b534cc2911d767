"""Importers for Hugging Face and original Google TF1 BERT checkpoints."""

from keras_bert_app.checkpoints.convert import SOURCE_FORMATS, convert_checkpoint
from keras_bert_app.checkpoints.importer import ImportReport, MissingEncoderWeightsError
from keras_bert_app.checkpoints.init_checkpoint import (check_init_checkpoint,
                                                        load_init_checkpoint,
                                                        load_init_model_dir)
