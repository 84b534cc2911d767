"""`BertTask`: what every model built on a `BertEncoder` shares."""

import keras

from keras_bert_app.models.encoder import BertEncoder


class BertTask(keras.Model):
    """Base of the models that put a head on a `BertEncoder`.

    Subclasses build their functional graph in `__init__` and call `_finish_init`;
    this class serialises the encoder with the model and gives `compile` defaults, so
    `model.compile(optimizer)` is enough to `fit`.
    """

    def _finish_init(self, encoder, **config):
        self.encoder = encoder
        self._task_config = config
        for key, value in config.items():
            setattr(self, key, value)

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
                **self._task_config}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.saving.deserialize_keras_object(config["dtype"])
        return cls(**config)


def check_encoder(encoder, model_name):
    if not isinstance(encoder, BertEncoder):
        raise TypeError(f"{model_name} needs a BertEncoder, got "
                        f"{type(encoder).__name__}.")
    return encoder
