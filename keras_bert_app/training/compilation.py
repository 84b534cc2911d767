"""Whether a training run compiles its step with XLA, decided once and logged.

Keras' `jit_compile="auto"` switches XLA off on CPU-only machines and under any
`tf.distribute` strategy on the TensorFlow backend. The second rule costs a GPU run
under `mirrored` or `multi_worker_mirrored` the fusions XLA gives BERT (LayerNorm,
GELU, softmax and the dropout masks fused around the matmuls); our "auto" keeps Keras'
choice everywhere except there, where it turns XLA on. On TPUs every step is
XLA-compiled whatever the flag says.
"""

import dataclasses

import keras


@dataclasses.dataclass(frozen=True)
class JitDecision:
    """`jit_compile` for `Model.compile` and why, for the run's log."""

    jit_compile: bool
    reason: str

    def describe(self):
        return f"XLA {'on' if self.jit_compile else 'off'}: {self.reason}"


def auto_jit_compile(backend, device_types, strategy_kind):
    """The "auto" choice for a backend, the accelerator types the step runs on
    (e.g. `{"GPU"}`, empty for CPU only) and the strategy kind (None, "tpu" or
    "other" for any other `tf.distribute` strategy)."""
    if backend == "torch":
        return JitDecision(False, "'auto' on torch runs eagerly (Keras' rule)")
    if backend == "jax":
        return JitDecision(True, "'auto' on JAX compiles with jax.jit (Keras' rule)")
    if strategy_kind == "tpu":
        return JitDecision(True, "'auto' under TPUStrategy: TPU steps are always "
                                 "XLA-compiled")
    accelerators = sorted(set(device_types) - {"CPU"})
    if not accelerators:
        return JitDecision(False, "'auto' on a CPU-only machine (Keras' rule; pass "
                                  "--jit_compile to compile anyway)")
    if strategy_kind is not None:
        return JitDecision(True, f"'auto' under tf.distribute on {'/'.join(accelerators)}"
                                 " (Keras would switch XLA off under a strategy)")
    return JitDecision(True, f"'auto' on {'/'.join(accelerators)} (Keras' rule)")


def resolve_jit_compile(setting, distribution):
    """The `JitDecision` for a run's `jit_compile` setting ("auto", True or False)
    under `distribution` (a `keras_bert_app.training.Distribution`)."""
    if setting is True or setting is False:
        return JitDecision(setting, f"jit_compile={setting} given")
    if setting != "auto":
        raise ValueError(f"jit_compile={setting!r}; expected 'auto', True or False.")
    backend = keras.backend.backend()
    strategy = distribution.strategy
    if backend != "tensorflow":
        return auto_jit_compile(backend, (), None)
    import tensorflow as tf

    if strategy is None:
        devices = [d.device_type for d in tf.config.list_logical_devices()]
        return auto_jit_compile(backend, devices, None)
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return auto_jit_compile(backend, ("TPU",), "tpu")
    devices = [tf.DeviceSpec.from_string(d).device_type
               for d in strategy.extended.worker_devices]
    return auto_jit_compile(backend, devices, "other")
