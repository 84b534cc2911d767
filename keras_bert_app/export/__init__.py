"""SavedModel export: preprocessing, encoders (TF Hub interface) and text-in task models
for TF Serving."""

from keras_bert_app.export.classifier import export_classifier
from keras_bert_app.export.encoder import export_encoder
from keras_bert_app.export.preprocessing import build_preprocessor, export_preprocessing
from keras_bert_app.export.embedder import export_embedder
from keras_bert_app.export.multiple_choice import export_multiple_choice
from keras_bert_app.export.ner import export_ner
from keras_bert_app.export.squad import export_squad
from keras_bert_app.export.serving_layout import next_version_dir, write_warmup_requests
from keras_bert_app.export.serving_ops import (check_serving_ops, checked_export_dir,
                                              core_op_types, saved_model_op_types)
