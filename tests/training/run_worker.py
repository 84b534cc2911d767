"""One training process for the distribution tests: runs `run_pretraining` with the
JSON config in argv[1] and saves the final weights and the distribution it used to
the .npz path in argv[2]. Separate processes, because logical devices, backends and
TF_CONFIG must be set before TensorFlow or JAX starts.

argv[1] may also be a JSON list of configs, with one .npz path each after it: the
runs go one after another in this process (the host CPU split into the most
`cpu_devices` any of them asks for), which saves a process start per run. Runs under
a one-device strategy go first: on JAX, a data-parallel run sets Keras' global
distribution."""

import json
import sys

from pipelines.frameworks import import_frameworks

# As a pipeline's process imports them: without the JAX (under the TensorFlow
# backend), scikit-learn and matplotlib that Keras' import pulls in.
import_frameworks()

from keras_bert_app.training.distribution import split_host_cpu  # noqa: E402


def main(specs_json, *output_paths):
    specs = json.loads(specs_json)
    specs = specs if isinstance(specs, list) else [specs]
    assert len(specs) == len(output_paths), (len(specs), output_paths)
    split_host_cpu(max(spec.pop("cpu_devices", 1) for spec in specs))
    for spec, output_path in zip(specs, output_paths):
        run(spec, output_path)


def run(spec, output_path):
    import keras
    import numpy as np

    from keras_bert_app.config import BertConfig
    from keras_bert_app.training.distribution import create_distribution
    from keras_bert_app.training.pretraining import PretrainingRunConfig, run_pretraining

    spec["bert_config"] = BertConfig(**spec["bert_config"])
    config = PretrainingRunConfig(**spec)
    distribution = create_distribution(config.distribution_strategy)
    pretrainer = run_pretraining(config, distribution)
    weights = {f"w{i:03d}": keras.ops.convert_to_numpy(w)
               for i, w in enumerate(pretrainer.weights)}
    np.savez(output_path, num_replicas=distribution.num_replicas,
             num_workers=distribution.num_workers, is_chief=distribution.is_chief,
             iterations=int(keras.ops.convert_to_numpy(pretrainer.optimizer.iterations)),
             jit_compile=bool(pretrainer.jit_compile),
             loss_scale=_loss_scale(pretrainer.optimizer),
             **weights)


def _loss_scale(optimizer):
    """The dynamic loss scale of a LossScaleOptimizer (mixed_float16), else 0."""
    import keras

    if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return 0.0
    return float(keras.ops.convert_to_numpy(optimizer.dynamic_scale))


if __name__ == "__main__":
    main(*sys.argv[1:])
