"""One training process for the distribution tests: runs `run_pretraining` with the
JSON config in argv[1] and saves the final weights and the distribution it used to
the .npz path in argv[2]. Separate processes, because logical devices, backends and
TF_CONFIG must be set before TensorFlow or JAX starts."""

import json
import sys

from keras_bert_app.training.distribution import split_host_cpu


def main(spec_json, output_path):
    spec = json.loads(spec_json)
    split_host_cpu(spec.pop("cpu_devices", 1))

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
    main(sys.argv[1], sys.argv[2])
