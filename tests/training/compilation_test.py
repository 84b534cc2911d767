"""The run's XLA choice: Keras' "auto" everywhere except under tf.distribute on an
accelerator, where Keras would switch XLA off and we switch it on."""

import sys

import keras
import pytest

from keras_bert_app.training.compilation import (auto_jit_compile,
                                                 resolve_jit_compile)
from keras_bert_app.training.distribution import create_distribution


@pytest.mark.parametrize("backend,devices,strategy,expected", [
    ("tensorflow", ["CPU"], None, False),          # Keras: no XLA on CPU-only machines
    ("tensorflow", ["CPU"], "other", False),
    ("tensorflow", ["CPU", "GPU"], None, True),    # Keras' own choice
    ("tensorflow", ["GPU", "GPU"], "other", True),  # Keras says off; we say on
    ("tensorflow", ["TPU"], "tpu", True),
    ("jax", [], None, True),
    ("torch", [], None, False),
])
def test_auto_choice(backend, devices, strategy, expected):
    decision = auto_jit_compile(backend, devices, strategy)
    assert decision.jit_compile is expected
    assert decision.describe().startswith(f"XLA {'on' if expected else 'off'}: 'auto'")


def test_under_a_strategy_on_gpus_the_log_says_keras_would_not():
    decision = auto_jit_compile("tensorflow", ["GPU"], "other")
    assert "Keras would switch XLA off" in decision.reason


@pytest.mark.parametrize("setting", [True, False])
def test_an_explicit_setting_is_kept_under_every_strategy(setting):
    for name in ("default", "one_device", "mirrored"):
        decision = resolve_jit_compile(setting, create_distribution(name))
        assert decision.jit_compile is setting
        assert decision.reason == f"jit_compile={setting} given"


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.distribute")
def test_auto_on_this_cpu_only_machine_is_off_with_and_without_a_strategy():
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    for name in ("default", "one_device", "mirrored"):
        decision = resolve_jit_compile("auto", create_distribution(name))
        assert decision.jit_compile is False, name
        assert "CPU-only" in decision.reason


def test_other_settings_are_refused():
    with pytest.raises(ValueError, match="jit_compile='yes'"):
        resolve_jit_compile("yes", create_distribution("default"))


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
