"""The run's XLA choice: Keras' "auto" everywhere except under tf.distribute on an
accelerator, where Keras would switch XLA off and we switch it on. And Grappler's:
off only for a short CPU run without XLA, and only while it trains."""

import sys
import types

import keras
import pytest

from keras_bert_app.training.compilation import (RunCompilation, auto_jit_compile,
                                                 grappler_pays,
                                                 resolve_graph_optimization,
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


@pytest.mark.parametrize("steps,hidden,pays", [
    (10, 384, False),   # the wall-time benchmark's run: 10 steps of MiniLM
    (31, 384, False),
    (32, 384, True),
    (7, 768, False),    # a step ~4x as costly pays back in a quarter of the steps
    (8, 768, True),
    (2, 128, False),    # the tests' tiny models
    (1000, 128, True),
])
def test_grappler_pays_from_a_number_of_steps_that_falls_with_the_width(steps, hidden,
                                                                       pays):
    assert grappler_pays(steps, hidden)[0] is pays


def _config(**overrides):
    return types.SimpleNamespace(**{"jit_compile": "auto", "graph_optimization": "auto",
                                    "compilation_cache": False,
                                    "compilation_cache_dir": None, **overrides})


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="Grappler")
def test_auto_switches_grappler_off_only_for_a_short_cpu_run_without_xla():
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    default = create_distribution("default")
    short, long = grappler_pays(10, 384), grappler_pays(1000, 384)
    off = resolve_graph_optimization("auto", False, default, short)
    assert not off.enabled and "would not pay back" in off.describe()
    assert off.describe().startswith("Grappler off: 'auto' on a CPU-only machine")
    assert resolve_graph_optimization("auto", False, default, long).enabled
    assert resolve_graph_optimization("auto", True, default, short).enabled  # XLA
    assert resolve_graph_optimization("auto", False, create_distribution("mirrored"),
                                      short).enabled
    assert resolve_graph_optimization("auto", False, default, None).enabled
    for setting in (True, False):
        decision = resolve_graph_optimization(setting, False, default, long)
        assert decision.enabled is setting
        assert decision.reason == f"graph_optimization={setting} given"
    with pytest.raises(ValueError, match="graph_optimization='fast'"):
        resolve_graph_optimization("fast", False, default, short)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="Grappler")
def test_grappler_is_off_while_a_short_run_trains_and_as_before_afterwards(capsys):
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        pytest.skip("this machine has a GPU")

    def disabled():
        return tf.config.optimizer.get_experimental_options().get(
            "disable_meta_optimizer", False)

    compilation = RunCompilation(_config(), create_distribution("default"),
                                 grappler=grappler_pays(10, 384))
    assert "Grappler off: 'auto' on a CPU-only machine" in capsys.readouterr().out
    assert compilation.first_step_detail() == "tracing, XLA off, Grappler off"
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(disabled())

    model = keras.Sequential([keras.Input([4]), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    before = disabled()
    with compilation.training():
        model.fit(tf.ones([8, 4]), tf.ones([8, 1]), batch_size=4, verbose=0,
                  callbacks=[Record()])
    assert seen == [True, True]
    assert disabled() is before
    with pytest.raises(RuntimeError):  # restored when training fails, too
        with compilation.training():
            raise RuntimeError("a failed step")
    assert disabled() is before
    long_run = RunCompilation(_config(), create_distribution("default"),
                              grappler=grappler_pays(1000, 384))
    with long_run.training():
        assert disabled() is before
    explicit = RunCompilation(_config(graph_optimization=False),
                              create_distribution("default"),
                              grappler=grappler_pays(1000, 384))
    with explicit.training():
        assert disabled() is True


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
