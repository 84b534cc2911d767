"""Distribution for training: `tf.distribute` strategies on the TensorFlow backend,
`keras.distribution` data parallelism on JAX — one set of names for both."""

import contextlib
import dataclasses
import json
import os

import keras

STRATEGIES = ("default", "one_device", "mirrored", "multi_worker_mirrored", "tpu")


@dataclasses.dataclass
class Distribution:
    """What a training run needs to know of its distribution.

    Attributes:
        name: one of `STRATEGIES`.
        strategy: the `tf.distribute.Strategy` (TensorFlow backend), else None.
        num_replicas: replicas that split each global batch.
        is_chief: whether this process writes checkpoints, logs and the model.
        num_workers: processes taking part.
    """

    name: str
    strategy: object = None
    num_replicas: int = 1
    is_chief: bool = True
    num_workers: int = 1

    def scope(self):
        """Where models and optimizers must be built."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def describe(self):
        return (f"{self.name} on {keras.backend.backend()}: {self.num_replicas} "
                f"replica(s), {self.num_workers} worker(s)")


def split_host_cpu(num_devices):
    """Splits the host CPU into `num_devices` logical devices, so that `mirrored`
    (TensorFlow) or data parallelism (JAX) runs without accelerators, e.g. in tests.
    Must run before TensorFlow or JAX touches a device."""
    if num_devices <= 1:
        return
    if keras.backend.backend() == "jax":
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_force_host_platform_device_count" not in flags:
            os.environ["XLA_FLAGS"] = (
                f"{flags} --xla_force_host_platform_device_count={num_devices}").strip()
        return
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)


def create_distribution(name="default", tpu=None):
    """The `Distribution` called `name`.

    TensorFlow backend: `default` (no strategy), `one_device` (the first GPU, else
    the CPU), `mirrored` (all local GPUs, else all logical CPUs),
    `multi_worker_mirrored` (the cluster of `TF_CONFIG`), `tpu` (`tpu` is the TPU
    name or address; "" or "local" for a TPU VM). JAX backend: `mirrored`, `tpu` and
    `multi_worker_mirrored` set `keras.distribution.DataParallel` over all devices
    (multi-worker first calls `keras.distribution.initialize()`, which reads the
    `KERAS_DISTRIBUTION_*` environment); `default`/`one_device` use one device.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown distribution strategy {name!r}; expected one of "
                         f"{list(STRATEGIES)}.")
    backend = keras.backend.backend()
    if backend == "jax":
        return _jax_distribution(name)
    if backend != "tensorflow":
        if name != "default":
            raise ValueError(f"distribution_strategy={name!r} needs the tensorflow or jax "
                             f"backend; this is {backend}.")
        return Distribution(name)
    import tensorflow as tf

    if name == "default":
        return Distribution(name)
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        device = gpus[0].name if gpus else tf.config.list_logical_devices("CPU")[0].name
        return Distribution(name, tf.distribute.OneDeviceStrategy(device))
    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or \
            [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices)
        return Distribution(name, strategy, strategy.num_replicas_in_sync)
    if name == "multi_worker_mirrored":
        cluster = json.loads(os.environ.get("TF_CONFIG", "{}"))
        if not cluster.get("cluster"):
            raise ValueError("multi_worker_mirrored needs TF_CONFIG with a cluster and "
                             "this process's task.")
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        resolver = strategy.cluster_resolver
        task_type, task_id = resolver.task_type, resolver.task_id
        has_chief = "chief" in cluster["cluster"]
        is_chief = task_type == "chief" or (not has_chief and task_id == 0)
        workers = sum(len(v) for k, v in cluster["cluster"].items() if k in ("chief", "worker"))
        return Distribution(name, strategy, strategy.num_replicas_in_sync, is_chief, workers)
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
        tpu="local" if tpu in (None, "") else tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    strategy = tf.distribute.TPUStrategy(resolver)
    return Distribution(name, strategy, strategy.num_replicas_in_sync)


def _jax_distribution(name):
    import jax

    if name in ("default", "one_device"):
        return Distribution(name)
    if name == "multi_worker_mirrored":
        keras.distribution.initialize()
    devices = keras.distribution.list_devices()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    return Distribution(name, None, len(devices), jax.process_index() == 0,
                        jax.process_count())
