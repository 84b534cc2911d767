"""One worker of the multi-worker input test: builds the training stream exactly as
`run_pretraining` does (`training_input`), distributes it as Keras' `fit` does
(`experimental_distribute_dataset`) and saves the rows it got for the first steps,
plus its initial weights, to the .npz path in argv[2]. argv[1] is the JSON config."""

import json
import sys


def main(spec_json, output_path):
    spec = json.loads(spec_json)
    steps = spec.pop("steps")

    from pipelines.frameworks import import_frameworks

    import_frameworks()  # as run_pretraining's process imports them (tests/training/run_worker.py)
    import keras
    import numpy as np

    from keras_bert_app import names
    from keras_bert_app.config import BertConfig
    from keras_bert_app.models import BertEncoder, BertPretrainer
    from keras_bert_app.text.text_config import TextConfig
    from keras_bert_app.training.distribution import create_distribution
    from keras_bert_app.training.pretraining import PretrainingRunConfig, training_input

    spec["bert_config"] = BertConfig(**spec["bert_config"])
    config = PretrainingRunConfig(**spec)
    distribution = create_distribution(config.distribution_strategy)
    text_config = TextConfig.for_vocab(config.vocab_file, config.do_lower_case)
    dataset, _ = training_input(config, distribution, config.bert_config,
                                config.vocab_file, text_config)
    rows = []
    if distribution.strategy is not None:
        dataset = distribution.strategy.experimental_distribute_dataset(dataset)
    iterator = iter(dataset)
    for _ in range(steps):
        features, _ = next(iterator)
        ids = features[names.INPUT_WORD_IDS]
        if distribution.strategy is not None:
            ids = distribution.strategy.experimental_local_results(ids)[0]
        rows.append(keras.ops.convert_to_numpy(ids))
    with distribution.scope():  # initial weights, as run_pretraining builds them
        model = BertPretrainer(BertEncoder(config.bert_config))
    weights = {f"w{i:03d}": keras.ops.convert_to_numpy(w)
               for i, w in enumerate(model.weights)}
    np.savez(output_path, rows=np.stack(rows), **weights)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
