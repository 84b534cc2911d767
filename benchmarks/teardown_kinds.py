"""The dataset kinds of teardown_benchmark.py, each built by the library's own code as
its runner builds it, with the task model the runner compiles, on small real data.

Each builder takes the benchmark's spec and returns `(model, training dataset,
evaluation dataset or None (evaluate on the training one), predict or None)`, where
`predict(model)` runs the task's own predict path (the library's function), which
calls `model.predict` as the runner does.
"""

import os

from harness import REPO

DATA = os.path.join(REPO, "..", "shared", "data")
VOCAB_SIZE = 30522  # the uncased MiniLM vocabulary every kind reads


def prepare(spec):
    """Pre-training records of the corpus (as `create_pretraining_data` writes them),
    multiple-choice files from SQuAD (as run_multiple_choice_test makes them) and a
    CoNLL-2003 prediction file of the first sentences of eng.testa."""
    import keras_bert_app as kba
    from keras_bert_app.data.multiple_choice_data import (split_by_title,
                                                          squad_to_multiple_choice,
                                                          write_jsonl)
    from keras_bert_app.data.squad_data import read_squad

    work = spec["work"]
    kba.data.create_pretraining_data(kba.data.PretrainingDataConfig(
        input_files=(spec["corpus"],), output_files=(os.path.join(work, "records",
                                                                  "data.tfrecord"),),
        vocab_file=spec["vocab"], dupe_factor=2), verbose=0)
    kept, held_out = split_by_title(read_squad(spec["squad"]), 2)
    write_jsonl(os.path.join(work, "mc_train.jsonl"), squad_to_multiple_choice(kept))
    write_jsonl(os.path.join(work, "mc_predict.jsonl"),
                squad_to_multiple_choice(held_out, seed=1)[:spec["predict_examples"]])
    with open(os.path.join(DATA, "conll2003", "eng.testa"), encoding="utf-8") as f:
        sentences = f.read().split("\n\n")
    with open(os.path.join(work, "ner_predict.txt"), "w", encoding="utf-8") as f:
        f.write("\n\n".join(sentences[:spec["predict_examples"]]) + "\n")
    return {}


def _sources(spec):
    """The run-config fields every kind shares: a random `--preset` encoder on the
    uncased vocabulary, XLA off (the compile is not what is measured)."""
    from keras_bert_app.config import BertConfig

    return dict(bert_config=BertConfig.from_preset(spec["preset"], vocab_size=VOCAB_SIZE),
                vocab_file=spec["vocab"], do_lower_case=True, jit_compile=False,
                model_dir=spec["model_dir"], train_batch_size=spec["batch"])


def _text_config(spec):
    from keras_bert_app.text.text_config import TextConfig

    return TextConfig.for_vocab(spec["vocab"], True)


def _compiled(config, build, spec, compile_args=None):
    """`build(encoder)` compiled as every fine-tuning runner does
    (`fine_tuning.compiled_task_model`: BERT's AdamW and schedule)."""
    from keras_bert_app.training import fine_tuning
    from keras_bert_app.training.checkpointing import CheckpointManager
    from keras_bert_app.training.distribution import create_distribution

    return fine_tuning.compiled_task_model(
        config, config.bert_config, build, num_steps=spec["steps"],
        manager=CheckpointManager(os.path.join(spec["model_dir"], "checkpoints")),
        distribution=create_distribution(), initialize=None,
        compile_args=compile_args)[0]


def _pretraining(spec, text):
    """run_pretraining's datasets (`make_dataset`: training, and the evaluation one
    its `--do_eval` takes `max_eval_steps` of) and its compiled `BertPretrainer`."""
    from keras_bert_app.models import BertEncoder, BertPretrainer
    from keras_bert_app.training import pretraining_inputs as inputs
    from keras_bert_app.training.optimizers import create_optimizer
    from keras_bert_app.training.pretraining import PretrainingRunConfig

    pattern = spec["corpus"] if text else os.path.join(spec["work"], "records", "*")
    config = PretrainingRunConfig(input_file=pattern, **_sources(spec),
                                  num_train_steps=spec["steps"], num_warmup_steps=0)
    train, evaluation = [inputs.make_dataset(
        config, pattern, batch, config.bert_config, config.vocab_file,
        _text_config(spec), is_training=is_training)[0]
        for batch, is_training in ((config.train_batch_size, True),
                                   (config.eval_batch_size, False))]
    model = BertPretrainer(BertEncoder(config.bert_config))
    model.compile(optimizer=create_optimizer(
        config.learning_rate, config.num_train_steps, config.num_warmup_steps,
        optimizer=config.optimizer, weight_decay=config.weight_decay), jit_compile=False)
    return model, train, evaluation, None


def _classifier(spec):
    import dataclasses

    from keras_bert_app.models import BertClassifier
    from keras_bert_app.training.classification import ClassifierRunConfig
    from keras_bert_app.training.classifier_inputs import read_classifier_data

    config = ClassifierRunConfig(task_name="SST-2", data_dir=os.path.join(
        DATA, "glue", "SST-2"), do_train=True, **_sources(spec))
    data = read_classifier_data(config)
    data.set_text(config.vocab_file, _text_config(spec))
    rows = slice(-spec["predict_examples"], None)  # the last rows stand for dev data
    held_out = dataclasses.replace(data.train, text_a=data.train.text_a[rows],
                                   labels=data.train.labels[rows],
                                   line_numbers=data.train.line_numbers[rows])
    model = _compiled(config, lambda e: BertClassifier(e, num_classes=2), spec)
    # As run_classifier builds it for a model trained without XLA: each batch padded
    # to its longest row.
    train = data.train_dataset(config.train_batch_size, seed=config.seed,
                               pad_to_longest=not model.jit_compile)
    return model, train, None, lambda m: data.predict(m, held_out, config.eval_batch_size)


def _squad(spec):
    from keras_bert_app.data.squad_data import read_squad
    from keras_bert_app.models import BertSpanLabeler
    from keras_bert_app.text.tokenizer import BertTokenizer
    from keras_bert_app.training.squad import (SquadRunConfig, _features_dataset,
                                               _windows)

    config = SquadRunConfig(train_file=spec["squad"], do_train=True, **_sources(spec))
    examples = read_squad(config.train_file)
    train, held_out = examples[:spec["train_examples"]], \
        examples[-spec["predict_examples"]:]
    tokenizer = BertTokenizer.from_text_config(config.vocab_file, _text_config(spec))
    features = _windows(config.train_file, train, tokenizer, config, is_training=True)
    # run_squad's `_train` pipeline, as it is there.
    dataset = _features_dataset(features, config.train_batch_size, labels=True).shuffle(
        len(features), seed=config.seed, reshuffle_each_iteration=True).repeat().batch(
        config.train_batch_size, drop_remainder=True).skip(0)

    def build(encoder):
        encoder.get_layer("pooler").trainable = False
        return BertSpanLabeler(encoder)

    def predict(model):  # run_squad's `_predict` up to its logits
        features = _windows(config.train_file, held_out, tokenizer, config)
        return model.predict(_features_dataset(features, config.predict_batch_size),
                             verbose=0)

    return _compiled(config, build, spec), dataset, None, predict


def _ner(spec):
    from keras_bert_app.data import ner_data
    from keras_bert_app.models import BertTokenClassifier
    from keras_bert_app.training.ner import NerRunConfig
    from keras_bert_app.training.ner_inputs import NerData, train_dataset

    config = NerRunConfig(do_train=True, train_file=os.path.join(
        DATA, "conll2003", "eng.train"), **_sources(spec))
    train = ner_data.read_ner_file(config.train_file)
    labels = ner_data.labels_of(train)
    held_out = ner_data.read_ner_file(os.path.join(spec["work"], "ner_predict.txt"))
    data = NerData(config, labels, config.stride, held_out)
    data.set_tokenizer(config.vocab_file, _text_config(spec))
    dataset = train_dataset(data.windows(train, with_labels=True),
                            config.train_batch_size, config.seed, 0, config.max_seq_length)

    def build(encoder):
        encoder.get_layer("pooler").trainable = False
        return BertTokenClassifier(encoder, num_classes=len(labels))

    return _compiled(config, build, spec), dataset, None, \
        lambda m: data.predict(m, held_out, config.eval_batch_size)


def _multiple_choice(spec):
    from keras_bert_app.data.multiple_choice_data import read_multiple_choice
    from keras_bert_app.models import BertMultipleChoice
    from keras_bert_app.training.multiple_choice import MultipleChoiceRunConfig
    from keras_bert_app.training.multiple_choice_inputs import (MultipleChoiceData,
                                                                choice_model_of,
                                                                training_model)

    config = MultipleChoiceRunConfig(do_train=True, train_file=os.path.join(
        spec["work"], "mc_train.jsonl"), **_sources(spec))
    held_out = read_multiple_choice(os.path.join(spec["work"], "mc_predict.jsonl"))
    data = MultipleChoiceData(config, read_multiple_choice(config.train_file), [],
                              held_out)
    data.set_text(config.vocab_file, _text_config(spec), config.max_seq_length)

    def compile_args(model):  # the choice model's loss and metrics, as the runner's
        choices = choice_model_of(model)
        return {"loss": choices.default_loss(), "metrics": choices.default_metrics()}

    model = _compiled(config, lambda e: training_model(BertMultipleChoice(e)), spec,
                      compile_args)
    return model, data.train_dataset(config.train_batch_size, seed=config.seed), None, \
        lambda m: data.predict(m, held_out, config.eval_batch_size)


BUILDERS = {"records": lambda s: _pretraining(s, text=False),
            "raw_text": lambda s: _pretraining(s, text=True), "classifier": _classifier,
            "squad": _squad, "ner": _ner, "multiple_choice": _multiple_choice}


