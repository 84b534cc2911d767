"""`BertTask`: what every model built on a `BertEncoder` shares."""

import keras
import numpy as np

from keras_bert_app.models.encoder import BertEncoder
from keras_bert_app.tf_tracing import build_optimizer_before_fit, trace_predict_once


class BertTask(keras.Model):
    """Base of the models that put a head on a `BertEncoder`.

    Subclasses build their functional graph in `__init__` and call `_finish_init`;
    this class serialises the encoder with the model and gives `compile` defaults, so
    `model.compile(optimizer)` is enough to `fit`.

    A task that carries a `preprocessor` (a `BertTextPreprocessor`) also takes raw
    text in `fit`, `evaluate` and `predict`: strings, `(text_a, text_b)` tuples or
    `text_a`/`text_b` dicts of them, or a `tf.data.Dataset` of such batches. Arrays
    are batched by `batch_size` (default 32), shuffled every epoch when `fit`'s
    `shuffle` is true (Keras' default: Keras itself does not shuffle datasets), and
    dynamically padded if the preprocessor says so. Encoder inputs still work as
    with any Keras model.
    """

    def _finish_init(self, encoder, preprocessor=None, **config):
        self.encoder = encoder
        self.preprocessor = preprocessor
        self._task_config = config
        for key, value in config.items():
            setattr(self, key, value)

    # ---------------------------------------------------------------- raw text

    def _text_data(self, x, y=None, sample_weight=None, batch_size=None,
                   shuffle=False):
        """`(x, y, sample_weight, batch_size)` for Keras: raw text becomes a
        preprocessed dataset; anything else passes through unchanged."""
        # The preprocessor (TensorFlow-side, in `text`) builds the dataset: the models
        # stay free of TensorFlow imports.
        if self.preprocessor is None or not self.preprocessor.accepts(x):
            return x, y, sample_weight, batch_size
        seed = int(np.random.randint(2**31 - 1)) if shuffle else None  # keras' seed
        dataset = self.preprocessor.dataset(x, y, sample_weight,
                                            batch_size=batch_size or 32,
                                            shuffle=shuffle, seed=seed)
        return dataset, None, None, None

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto",
            callbacks=None, validation_split=0.0, validation_data=None, shuffle=True,
            **kwargs):
        text = self.preprocessor is not None and self.preprocessor.accepts(x)
        x, y, sample_weight, batch_size = self._text_data(
            x, y, kwargs.pop("sample_weight", None), batch_size, shuffle)
        if text:
            shuffle = False  # done by the dataset, every epoch
        if validation_data is not None and self.preprocessor is not None:
            parts = tuple(validation_data) if isinstance(validation_data, (list, tuple)) \
                else (validation_data,)
            if isinstance(validation_data, tuple) and len(parts) in (2, 3):
                validation_data = self._text_data(*parts[:3])[0]
            else:
                validation_data = self._text_data(validation_data)[0]
        build_optimizer_before_fit(self)  # its variables not created in the trace
        return super().fit(x=x, y=y, batch_size=batch_size, epochs=epochs,
                           verbose=verbose, callbacks=callbacks,
                           validation_split=validation_split,
                           validation_data=validation_data, shuffle=shuffle,
                           sample_weight=sample_weight, **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto",
                 sample_weight=None, **kwargs):
        x, y, sample_weight, batch_size = self._text_data(x, y, sample_weight, batch_size)
        return super().evaluate(x=x, y=y, batch_size=batch_size, verbose=verbose,
                                sample_weight=sample_weight, **kwargs)

    def predict(self, x, batch_size=None, **kwargs):
        x, _, _, batch_size = self._text_data(x, batch_size=batch_size)
        # Dynamically padded batches: one trace, not one per new shape.
        trace_predict_once(self, x)
        return super().predict(x, batch_size=batch_size, **kwargs)

    def default_loss(self):
        raise NotImplementedError

    def default_metrics(self):
        return None

    def compile(self, optimizer="adam", loss="auto", metrics="auto", **kwargs):
        """Like `keras.Model.compile`; `loss`/`metrics` `"auto"` pick the task's own."""
        if loss == "auto":
            loss = self.default_loss()
        if metrics == "auto":
            metrics = self.default_metrics()
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def compile_from_config(self, config):
        # Keras skips compiling on load when `compile` is overridden; ours keeps Keras'
        # signature, so the saved compile config can be replayed as it is.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable,
                "dtype": keras.saving.serialize_keras_object(self.dtype_policy),
                "encoder": keras.saving.serialize_keras_object(self.encoder),
                **({} if self.preprocessor is None else {
                    "preprocessor": keras.saving.serialize_keras_object(
                        self.preprocessor)}),
                **self._task_config}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        if config.get("preprocessor") is not None:
            config["preprocessor"] = keras.saving.deserialize_keras_object(
                config["preprocessor"])
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.saving.deserialize_keras_object(config["dtype"])
        return cls(**config)


# How a model directory becomes a task model with its preprocessor: registered by
# `keras_bert_app.model_dir` (which builds models, so models cannot import it).
_MODEL_DIR_LOADERS = {}


def register_model_dir_loader(model_name, loader):
    _MODEL_DIR_LOADERS[model_name] = loader


def model_dir_loader(model_name):
    if model_name not in _MODEL_DIR_LOADERS:
        raise RuntimeError(f"{model_name}.from_model_dir needs keras_bert_app.model_dir "
                           "(imported by `import keras_bert_app`).")
    return _MODEL_DIR_LOADERS[model_name]


def check_encoder(encoder, model_name):
    if not isinstance(encoder, BertEncoder):
        raise TypeError(f"{model_name} needs a BertEncoder, got "
                        f"{type(encoder).__name__}.")
    return encoder
