"""SavedModel export: preprocessing (and, later, encoders and end-to-end task models)."""

from keras_bert_app.export.preprocessing import build_preprocessor, export_preprocessing
