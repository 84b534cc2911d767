"""Whether a training run compiles its step with XLA, decided once and logged.

Keras' `jit_compile="auto"` switches XLA off on CPU-only machines and under any
`tf.distribute` strategy on the TensorFlow backend. The second rule costs a GPU run
under `mirrored` or `multi_worker_mirrored` the fusions XLA gives BERT (LayerNorm,
GELU, softmax and the dropout masks fused around the matmuls); our "auto" keeps Keras'
choice everywhere except there, where it turns XLA on. On TPUs every step is
XLA-compiled whatever the flag says.

On a CPU-only machine XLA pays only where it was measured to (benchmarks/RESULTS.md,
2 cores): a bert_small pre-training step (seq 128, batch 16) takes 2.86 s without XLA
and 2.31 s with it, and its first step compiles in ~24 s, so XLA is ahead after ~45
steps; "auto" turns it on for pre-training of at least `CPU_XLA_MIN_STEPS` steps of a
model at least that wide. Fine-tuning MiniLM with length buckets gained 2% a step
(80.5 → 82.2 examples/s) for 10–14 s of compilation per bucket shape, plus the
evaluation's shapes: it never pays back at fine-tuning lengths, so it stays off.
With the persistent compilation cache a repeated run skips the compilation.

Without XLA, TensorFlow's graph optimiser (Grappler) rewrites each traced step graph
at its first call: ~0.9 s of the MiniLM fine-tuning step's first call on 2 cores
(6,269 nodes), for ~2.7% a step in a quiet hour's 60-step runs (nothing measurable
over 10 steps) and ~6% in a loaded hour's. "auto" switches it off for a short CPU run whose steps cannot pay it back
(`grappler_pays`), for the training run only (`RunCompilation.training`).
"""

import contextlib
import dataclasses
import hashlib
import importlib.metadata
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile

import keras

from keras_bert_app.files import user_cache_dir


# The measured break-even on a CPU, doubled for margin, and the narrowest model measured.
CPU_XLA_MIN_STEPS = 100
CPU_XLA_MIN_HIDDEN = 512


def cpu_xla_pays(num_steps, hidden_size):
    """`(pays, why)`: whether XLA pays for a CPU pre-training run of `num_steps`
    steps of a model `hidden_size` wide (see the module docstring)."""
    if num_steps >= CPU_XLA_MIN_STEPS and hidden_size >= CPU_XLA_MIN_HIDDEN:
        return True, (f"{num_steps} steps of a {hidden_size}-wide model: XLA saves "
                      f"~19% a step and compiles once (ahead after ~45 steps)")
    return False, (f"{num_steps} steps of a {hidden_size}-wide model (XLA pays on a "
                   f"CPU from {CPU_XLA_MIN_STEPS} steps of a model "
                   f"≥ {CPU_XLA_MIN_HIDDEN} wide)")


# Grappler's ~0.9 s rewrite of MiniLM's step graph (384 wide) paid back after ~75
# steps at the per-step gain of a quiet hour's 60-step runs (~2.7%), after ~45 at
# the largest measured (6%, a loaded hour); 32 keeps a margin below both. The graph
# grows with depth as the step does, a step's cost about with the width squared.
GRAPPLER_MIN_STEPS = 32
GRAPPLER_REFERENCE_WIDTH = 384


def grappler_pays(num_steps, hidden_size):
    """`(pays, why)`: whether Grappler's one-off rewrite of the train step (and of
    the evaluation's) pays for a CPU run of `num_steps` steps without XLA of a model
    `hidden_size` wide: from `GRAPPLER_MIN_STEPS` steps at 384 wide, fewer for wider
    models (a quarter at 768)."""
    scale = (GRAPPLER_REFERENCE_WIDTH / hidden_size) ** 2
    min_steps = max(1, math.ceil(GRAPPLER_MIN_STEPS * scale))
    if num_steps >= min_steps:
        return True, f"{num_steps} steps ≥ {min_steps} for a {hidden_size}-wide model"
    return False, (f"{num_steps} steps < {min_steps} for a {hidden_size}-wide model: "
                   "its ~1 s rewrite of the step graph would not pay back")


@dataclasses.dataclass(frozen=True)
class _RunChoice:
    """A setting a run switches on or off, and why, for its log."""

    enabled: bool
    reason: str
    SUBJECT = None  # what is switched, as the log names it (a class attribute)

    def describe(self):
        return f"{self.SUBJECT} {'on' if self.enabled else 'off'}: {self.reason}"


@dataclasses.dataclass(frozen=True)
class GraphOptimization(_RunChoice):
    """Whether Grappler optimises a training run's step graphs, and why."""

    SUBJECT = "Grappler"


def resolve_graph_optimization(setting, jit_compile, distribution, pays=None):
    """The `GraphOptimization` of a run: `setting` ("auto", True or False); "auto"
    is off only on TensorFlow without XLA, without a `tf.distribute` strategy, on a
    CPU-only machine, when `pays` (`grappler_pays`' `(pays, why)`) says it would not
    pay; elsewhere TensorFlow's default (on)."""
    if setting is True or setting is False:
        return GraphOptimization(setting, f"graph_optimization={setting} given")
    if setting != "auto":
        raise ValueError(f"graph_optimization={setting!r}; expected 'auto', True or "
                         "False.")
    if keras.backend.backend() != "tensorflow":
        return GraphOptimization(True, "not TensorFlow (nothing to switch)")
    if jit_compile:
        return GraphOptimization(True, "'auto' with XLA (XLA compiles the step)")
    if distribution.strategy is not None:
        return GraphOptimization(True, "'auto' under a tf.distribute strategy "
                                       "(TensorFlow's default)")
    import tensorflow as tf

    if any(d.device_type != "CPU" for d in tf.config.list_logical_devices()):
        return GraphOptimization(True, "'auto' with an accelerator (TensorFlow's "
                                       "default)")
    if pays is None:
        return GraphOptimization(True, "'auto' (TensorFlow's default)")
    enabled, why = pays
    return GraphOptimization(enabled, f"'auto' on a CPU-only machine without XLA: {why}")


@dataclasses.dataclass(frozen=True)
class JitDecision(_RunChoice):
    """`jit_compile` for `Model.compile` and why, for the run's log."""

    SUBJECT = "XLA"

    @property
    def jit_compile(self):
        return self.enabled


def auto_jit_compile(backend, device_types, strategy_kind, cpu_pays=None):
    """The "auto" choice for a backend, the accelerator types the step runs on
    (e.g. `{"GPU"}`, empty for CPU only) and the strategy kind (None, "tpu" or
    "other" for any other `tf.distribute` strategy). `cpu_pays`: `cpu_xla_pays`'
    `(pays, why)` for a run that may gain from XLA on a CPU (pre-training); None
    keeps Keras' CPU rule."""
    if backend == "torch":
        return JitDecision(False, "'auto' on torch runs eagerly (Keras' rule)")
    if backend == "jax":
        return JitDecision(True, "'auto' on JAX compiles with jax.jit (Keras' rule)")
    if strategy_kind == "tpu":
        return JitDecision(True, "'auto' under TPUStrategy: TPU steps are always "
                                 "XLA-compiled")
    accelerators = sorted(set(device_types) - {"CPU"})
    if not accelerators:
        if cpu_pays is not None:
            pays, why = cpu_pays
            return JitDecision(pays, f"'auto' on a CPU-only machine: {why}")
        return JitDecision(False, "'auto' on a CPU-only machine (Keras' rule; pass "
                                  "--jit_compile to compile anyway)")
    if strategy_kind is not None:
        return JitDecision(True, f"'auto' under tf.distribute on {'/'.join(accelerators)}"
                                 " (Keras would switch XLA off under a strategy)")
    return JitDecision(True, f"'auto' on {'/'.join(accelerators)} (Keras' rule)")


def resolve_jit_compile(setting, distribution, cpu_pays=None):
    """The `JitDecision` for a run's `jit_compile` setting ("auto", True or False)
    under `distribution` (a `keras_bert_app.training.Distribution`); `cpu_pays` as
    `auto_jit_compile`'s."""
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
        return auto_jit_compile(backend, devices, None, cpu_pays)
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return auto_jit_compile(backend, ("TPU",), "tpu")
    devices = [tf.DeviceSpec.from_string(d).device_type
               for d in strategy.extended.worker_devices]
    return auto_jit_compile(backend, devices, "other", cpu_pays)


def default_cache_dir():
    """The compilation cache every run shares by default: `$XDG_CACHE_HOME` (else
    `~/.cache`) `/keras_bert_app/xla`."""
    return user_cache_dir("xla")


def _machine_key():
    """A folder name for programs compiled here: backend and its version, CPU
    architecture and instruction-set flags, GPU models (a program compiled for one
    machine may not run on another sharing a home directory)."""
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        pass
    backend = keras.backend.backend()
    version = importlib.metadata.version({"tensorflow": "tensorflow", "jax": "jaxlib"}.get(
        backend, "keras"))
    gpus = ""
    if shutil.which("nvidia-smi"):  # GPU programs are compiled for the GPU's model
        try:
            gpus = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap",
                                   "--format=csv,noheader"], capture_output=True,
                                  text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            gpus = "unknown"
    digest = hashlib.sha256(f"{platform.machine()} {flags} {gpus}".encode()
                            ).hexdigest()[:12]
    return f"{backend}-{version}-{platform.machine()}-{digest}"


def enable_compilation_cache(directory=None):
    """Keeps compiled XLA programs in `directory` (default `default_cache_dir()`), so a
    later run with the same shapes — any `model_dir` — loads them instead of compiling.
    Returns the folder used (a sub-folder per backend version and CPU), or None where
    nothing can be cached: torch, or a TensorFlow process that already ran an op.

    TensorFlow reads `TF_XLA_FLAGS` (`--tf_xla_persistent_cache_directory`) once, at
    its first op: in a script, call this before anything else touches TensorFlow (the
    pipelines do it first thing). A folder already named in `TF_XLA_FLAGS` is kept.
    JAX: `jax_compilation_cache_dir`, settable at any time.
    """
    backend = keras.backend.backend()
    if backend == "torch":
        return None
    folder = os.path.join(directory or default_cache_dir(), _machine_key())
    if backend == "jax":
        import jax

        if not _writable(folder):
            return None
        jax.config.update("jax_compilation_cache_dir", folder)
        return folder
    given = re.search(r"--tf_xla_persistent_cache_directory=(\S+)",
                      os.environ.get("TF_XLA_FLAGS", ""))
    if given:
        return given.group(1)
    if not _writable(folder):
        return None
    if _tensorflow_started():
        return None  # its flags are read: the folder would be ignored
    os.environ["TF_XLA_FLAGS"] = (os.environ.get("TF_XLA_FLAGS", "") +
                                  f" --tf_xla_persistent_cache_directory={folder}").strip()
    return folder


def _writable(folder):
    """Whether programs can be written into `folder` (created if needed). TensorFlow
    fails the training step itself when it cannot write a compiled program (e.g. a
    read-only home in a sandbox), so an unwritable folder means no cache, said once."""
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            return True
    except OSError as error:
        print(f"No compilation cache: {folder} is not writable ({error.strerror}).")
        return False


def _tensorflow_started():
    """Whether TensorFlow's eager context exists (it runs its first op, and reads
    `TF_XLA_FLAGS`, when it is created). Private attribute, pinned by
    tests/training/compilation_test.py."""
    if "tensorflow" not in sys.modules:
        return False
    from tensorflow.python.eager import context

    return context.context()._context_handle is not None


def cached_programs(folder):
    """How many compiled programs `folder` holds (0 when it is None or missing)."""
    if not folder or not os.path.isdir(folder):
        return 0
    return sum(1 for entry in os.scandir(folder) if entry.is_file())


class TraceCounter:
    """Counts the traces of a compiled model's train, test and predict steps: each
    trace builds the step's graph (under XLA, each new input shape after it compiles
    a program). Installed before the model's first `fit`/`evaluate`/`predict`; Keras
    calls `model.train_step` (an instance attribute here) inside each trace."""

    KINDS = ("train", "test", "predict")

    def __init__(self, model):
        self.counts = dict.fromkeys(self.KINDS, 0)
        self.active = not model.run_eagerly and keras.backend.backend() != "torch"
        if not self.active:
            return
        for kind in self.KINDS:
            if getattr(model, f"{kind}_function") is not None:
                raise ValueError(f"The model's {kind} function is already built: count "
                                 "its traces before its first call.")
            setattr(model, f"{kind}_step", self._counting(kind, getattr(model,
                                                                      f"{kind}_step")))

    def _counting(self, kind, step):
        def counted(*args, **kwargs):
            self.counts[kind] += 1
            return step(*args, **kwargs)
        return counted

    def describe(self):
        if not self.active:
            return "steps run eagerly (no tracing)"
        return "traced " + ", ".join(f"{kind} step {count}x"
                                     for kind, count in self.counts.items() if count)


class RunCompilation:
    """How a training run's steps compile, decided and logged once: the XLA decision
    (`resolve_jit_compile`), the persistent compilation cache (when something is
    compiled: XLA on TensorFlow, any JAX run), and at the end the count of traces
    and of programs compiled into the cache.

    Args:
        config: a run config (`jit_compile`, `compilation_cache`,
            `compilation_cache_dir`).
        distribution: the run's `Distribution`; the chief prints.
        cpu_pays: `cpu_xla_pays(...)` for a run XLA may pay for on a CPU.
        grappler: `grappler_pays(...)` for the run's planned steps (None:
            TensorFlow's default, Grappler on). `config.graph_optimization` ("auto",
            True or False) decides with it (`resolve_graph_optimization`).
    """

    def __init__(self, config, distribution, cpu_pays=None, grappler=None):
        self.decision = resolve_jit_compile(config.jit_compile, distribution, cpu_pays)
        self.graph_optimization = resolve_graph_optimization(
            config.graph_optimization, self.decision.jit_compile, distribution, grappler)
        self.chief = distribution.is_chief
        compiles = self.decision.jit_compile or keras.backend.backend() == "jax"
        self.cache = enable_compilation_cache(config.compilation_cache_dir) \
            if config.compilation_cache and compiles else None
        self.programs_before = cached_programs(self.cache)
        self.counter = None
        if not self.chief:
            return
        if self.cache:
            print(f"{self.decision.describe()}; compilation cache {self.cache} "
                  f"({self.programs_before} programs)")
        elif config.compilation_cache and compiles:
            print(f"{self.decision.describe()}; no compilation cache (its folder is not "
                  "writable, or TensorFlow ran before it could be set: call "
                  "keras_bert_app.training.enable_compilation_cache() first)")
        else:
            print(self.decision.describe())
        if keras.backend.backend() == "tensorflow" and (
                not self.decision.jit_compile or not self.graph_optimization.enabled):
            print(self.graph_optimization.describe())

    @property
    def jit_compile(self):
        return self.decision.jit_compile

    def watch(self, model):
        """Counts `model`'s step traces from now on (before its first call)."""
        self.counter = TraceCounter(model)

    @contextlib.contextmanager
    def training(self):
        """Grappler as decided while the run trains (its evaluations at checkpoints
        included), the process' setting again afterwards (a prediction after
        training instantiates its function again under it). TensorFlow passes its
        optimiser options with every function call and instantiates a function again
        for other options, so the setting must not change while the run trains."""
        if self.graph_optimization.enabled or keras.backend.backend() != "tensorflow":
            yield
            return
        import tensorflow as tf

        before = tf.config.optimizer.get_experimental_options().get(
            "disable_meta_optimizer", False)
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
        try:
            yield
        finally:
            tf.config.optimizer.set_experimental_options(
                {"disable_meta_optimizer": before})

    def first_step_detail(self):
        """How the first step was prepared, for the start-up line."""
        grappler = "" if self.graph_optimization.enabled or \
            keras.backend.backend() != "tensorflow" else ", Grappler off"
        if self.decision.jit_compile:
            return "tracing, XLA compilation" + grappler
        return "tracing, XLA off" + grappler

    def summary(self):
        """One line: traces, and programs compiled into the cache by this run."""
        parts = [self.counter.describe()] if self.counter else []
        if self.cache:
            new = cached_programs(self.cache) - self.programs_before
            parts.append(f"{new} program{'s' if new != 1 else ''} compiled into the "
                         f"cache (others loaded from it)")
            traced = self.counter is not None and any(self.counter.counts.values())
            if new == 0 and self.programs_before == 0 and traced and \
                    keras.backend.backend() == "tensorflow":
                # Compiled, yet nothing reached an empty cache: TensorFlow had read
                # its flags before the folder was named.
                parts.append("the cache stayed empty: TensorFlow read TF_XLA_FLAGS "
                             "before it was set, so this process does not use it")
        return "Compilation: " + ("; ".join(parts) or "nothing compiled")
