"""SavedModel export: preprocessing (and, later, encoders and end-to-end task models)."""

from keras_bert_app.export.preprocessing import build_preprocessor, export_preprocessing
from keras_bert_app.export.serving_ops import (check_serving_ops, checked_export_dir,
                                              core_op_types, saved_model_op_types)
