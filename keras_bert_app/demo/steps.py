"""The demo's steps, each a call into the library that the matching pipeline makes.

Every step takes the `DemoConfig` and returns a small dict of what it made (for the
summary and the state file), with paths relative to the output folder (which may be
moved). `FOLDERS` names each step's own folder (removed when the step starts over);
`outputs` the files a finished step leaves, so a rerun redoes a step whose results
were deleted.
"""

import json
import math
import os
import subprocess
import sys

from keras_bert_app import names
from keras_bert_app.demo import settings

PRETRAINED, MINILM, CLASSIFIER = "pretrained_bert", "minilm", "sst2_classifier"
EXPORT_BASE = os.path.join("saved_models", "sst2")
CORPUS_TRAIN, CORPUS_HELDOUT = "train.txt", "heldout.txt"
HELDOUT_SHARE = 0.05  # of the speeches: never trained on, for the pre-training eval


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def split_corpus(config):
    """Shakespeare's speeches (blank-line separated documents) → the first 95% to
    learn from, the last 5% held out."""
    with open(config.data_file(settings.CORPUS_FILE), encoding="utf-8") as f:
        speeches = [s for s in f.read().split("\n\n") if s.strip()]
    cut = len(speeches) - max(1, int(len(speeches) * HELDOUT_SHARE))
    folder = config.path("corpus")
    os.makedirs(folder, exist_ok=True)
    for name, part in ((CORPUS_TRAIN, speeches[:cut]), (CORPUS_HELDOUT, speeches[cut:])):
        with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
            f.write("\n\n".join(s.strip("\n") for s in part) + "\n")
    return {"train_documents": cut, "heldout_documents": len(speeches) - cut}


def learn_vocabulary(config):
    from keras_bert_app.text.text_config import TextConfig
    from keras_bert_app.text.vocab_learning import learn_vocab, write_vocab

    split = split_corpus(config)
    vocab_file = config.path("vocab", names.VOCAB_FILE)
    os.makedirs(os.path.dirname(vocab_file), exist_ok=True)
    tokens = learn_vocab([config.path("corpus", CORPUS_TRAIN)], config.sizes.vocab_size,
                         lower_case=True)
    write_vocab(tokens, vocab_file)
    TextConfig.for_vocab(vocab_file, True).to_json_file(
        config.path("vocab", names.TEXT_CONFIG_FILE))
    return {"tokens": len(tokens), **split}


def create_data(config):
    from keras_bert_app.data import PretrainingDataConfig, create_pretraining_data

    sizes = config.sizes
    made = {}
    for split, corpus, dupe in (("train", CORPUS_TRAIN, sizes.dupe_factor),
                                ("heldout", CORPUS_HELDOUT, 1)):
        output = config.path("pretraining_data", split, f"{split}.tfrecord")
        os.makedirs(os.path.dirname(output), exist_ok=True)
        metadata = create_pretraining_data(PretrainingDataConfig(
            input_files=(config.path("corpus", corpus),), output_files=(output,),
            vocab_file=config.path("vocab", names.VOCAB_FILE), do_lower_case=True,
            max_seq_length=sizes.pretrain_seq_length,
            max_predictions_per_seq=sizes.max_predictions_per_seq, dupe_factor=dupe,
            num_workers=min(2, os.cpu_count() or 1)), verbose=config.verbose)
        made[f"{split}_instances"] = metadata["num_instances"]
    return made


def pretrain(config):
    from keras_bert_app.config import BertConfig
    from keras_bert_app.text.vocab import load_vocab
    from keras_bert_app.training.pretraining import PretrainingRunConfig, run_pretraining

    sizes = config.sizes
    vocab_file = config.path("vocab", names.VOCAB_FILE)
    model_dir = config.path(PRETRAINED)
    run_pretraining(PretrainingRunConfig(
        input_file=config.path("pretraining_data", "train", "*.tfrecord"),
        model_dir=model_dir,
        bert_config=BertConfig.from_preset("bert_tiny",
                                           vocab_size=len(load_vocab(vocab_file))),
        vocab_file=vocab_file, do_lower_case=True,
        train_batch_size=sizes.pretrain_batch_size, num_train_steps=sizes.pretrain_steps,
        num_warmup_steps=sizes.pretrain_steps // 10, learning_rate=1e-3,
        save_checkpoints_steps=sizes.pretrain_checkpoint_steps,
        log_steps=10,  # a point every 10 steps on the curves
        do_eval=True, eval_input_file=config.path("pretraining_data", "heldout",
                                                  "*.tfrecord"),
        eval_batch_size=32, max_eval_steps=10, verbose=config.verbose))
    results = _read_json(os.path.join(model_dir, names.EVAL_RESULTS_FILE))
    return {"steps": sizes.pretrain_steps,
            **{k: results[k] for k in ("masked_lm_accuracy", "masked_lm_loss",
                                       "next_sentence_accuracy") if k in results}}


def import_minilm(config):
    from keras_bert_app.checkpoints import convert_checkpoint

    source = config.minilm_source()
    report = convert_checkpoint("hf", source, config.path(MINILM))
    return {"source": source, "loaded_weights": len(report.loaded),
            "missing_heads": len(report.missing_heads)}


def split_sst2(config):
    """The first `finetune_rows` rows to train on and the last `eval_rows` held out,
    with SST-2's label ids written as their names (0 → negative, 1 → positive).

    SST-2's training rows are phrases cut from the treebank's sentences, so the same
    phrase, or a phrase inside a longer one, occurs in several rows: a held-out row
    that is a training row or a part of one (whole words) is left out of the
    evaluation, which would otherwise score memory, not generalisation."""
    sizes = config.sizes
    path = config.data_file(settings.SST2_FILE)
    with open(path, encoding="utf-8") as f:
        header, *rows = f.read().splitlines()
    if header.split("\t") != [settings.SST2_TEXT_COLUMN, settings.SST2_LABEL_COLUMN]:
        raise ValueError(f"{path}: expected the header 'sentence<TAB>label', got {header!r}")
    if sizes.finetune_rows + sizes.eval_rows > len(rows):
        raise ValueError(f"{path} has {len(rows)} rows; the demo needs "
                         f"{sizes.finetune_rows} + {sizes.eval_rows}.")
    named = []
    for number, row in enumerate(rows, start=2):
        text, _, label = row.rpartition("\t")
        if label not in ("0", "1") or not text.strip():
            raise ValueError(f"{path}, line {number}: expected 'text<TAB>0|1', got {row!r}")
        named.append(f"{text.strip()}\t{settings.SST2_LABEL_NAMES[int(label)]}")
    train, held_out = named[:sizes.finetune_rows], named[len(named) - sizes.eval_rows:]
    seen = "\n".join(f" {row.rpartition(chr(9))[0]} " for row in train)
    dev = [row for row in held_out if f" {row.rpartition(chr(9))[0]} " not in seen]
    folder = config.path("sst2")
    os.makedirs(folder, exist_ok=True)
    splits = {"train.tsv": train, "dev.tsv": dev}
    for name, part in splits.items():
        with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
            f.write("\t".join([settings.SST2_TEXT_COLUMN, settings.SST2_LABEL_COLUMN]) +
                    "\n" + "".join(r + "\n" for r in part))
    return {"train_rows": len(train), "eval_rows": len(dev),
            "eval_rows_in_training_phrases": len(held_out) - len(dev)}


def fine_tune(config):
    from keras_bert_app.training.classification import ClassifierRunConfig, run_classifier

    sizes = config.sizes
    split = split_sst2(config)
    # run_classifier's step count for these epochs.
    steps = max(1, int(split["train_rows"] * sizes.finetune_epochs /
                       sizes.finetune_batch_size))
    # Evaluations at whole tens of steps: Keras then logs every 10 or 20 steps (an
    # interval is a Keras "epoch"), not after every step.
    every = math.ceil(steps / sizes.evaluations / 10) * 10
    results = run_classifier(ClassifierRunConfig(
        model_dir=config.path(CLASSIFIER), init_model_dir=config.path(MINILM),
        train_file=config.path("sst2", "train.tsv"), eval_file=config.path("sst2", "dev.tsv"),
        text_a_column=settings.SST2_TEXT_COLUMN, label_column=settings.SST2_LABEL_COLUMN,
        label_names=settings.SST2_LABEL_NAMES, do_train=True, do_eval=True,
        max_seq_length=sizes.finetune_seq_length,
        train_batch_size=sizes.finetune_batch_size, eval_batch_size=64,
        learning_rate=sizes.finetune_learning_rate,
        num_train_epochs=sizes.finetune_epochs,
        save_checkpoints_steps=every,
        verbose=config.verbose))
    return {**split,
            **{k: results[k] for k in ("accuracy", "f1", "mcc", "loss", "best_step",
                                       "global_step") if k in results}}


def export(config, resume):
    """The classifier as the next version under saved_models/sst2. When `resume`s an
    interrupted export of the same classifier, a version already there is reused: an
    export moves into place whole or not at all, and the folder is emptied whenever
    the step starts over, so it holds only exports of this classifier."""
    from keras_bert_app.export import export_classifier
    from keras_bert_app.export.serving_layout import existing_versions

    base = config.path(EXPORT_BASE)
    versions = existing_versions(base)
    if versions and resume:
        version_dir = os.path.join(base, str(max(versions)))
    else:
        version_dir = export_classifier(base, model_dir=config.path(CLASSIFIER),
                                        warmup_texts=list(settings.DEFAULT_SENTENCES))
    return {"version_dir": os.path.relpath(version_dir, config.output_dir)}


def serve(config, version_dir):
    """Classifies the sentences in a fresh interpreter that imports only TensorFlow
    and TF Text (`serving_client.py`, run by path, which makes our package and
    keras-hub unimportable: a SavedModel that needed them would fail to load)."""
    sentences = list(settings.DEFAULT_SENTENCES) + list(config.sentences)
    client = os.path.join(os.path.dirname(os.path.abspath(__file__)), "serving_client.py")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, client, config.path(version_dir), *sentences]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True,
                              timeout=600)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"The exported model {config.path(version_dir)} did not "
                           "answer within 600 s in a separate process.") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"The exported model {config.path(version_dir)} failed to "
                           f"answer in a separate process (exit {done.returncode}):\n"
                           f"{done.stderr[-3000:]}")
    answer = json.loads(lines[-1])
    return {"sentences": sentences, "labels": answer["label"],
            "probabilities": answer["probabilities"]}


def draw(config):
    from keras_bert_app.plots import plot_model_dir

    written = []
    for model_dir in (PRETRAINED, CLASSIFIER):
        written += plot_model_dir(config.path(model_dir), config.path("plots", model_dir))
    return {"pictures": [os.path.relpath(p, config.output_dir) for p in written]}


# Each step's own folder under the output folder: emptied when the step starts over
# (its input changed, or its results went missing), kept when it resumes.
FOLDERS = {
    "vocabulary": ("corpus", "vocab"),
    "pretraining_data": ("pretraining_data",),
    "pretraining": (PRETRAINED,),
    "import": (MINILM,),
    "fine_tuning": ("sst2", CLASSIFIER),
    "export": (EXPORT_BASE,),
    "pictures": ("plots",),
}


def outputs(key, result):
    """The files (relative to the output folder) that the finished step `key`, which
    returned `result`, leaves behind."""
    return {
        "vocabulary": [os.path.join("vocab", names.VOCAB_FILE),
                       os.path.join("corpus", CORPUS_HELDOUT)],
        "pretraining_data": [os.path.join("pretraining_data", split,
                                          names.PRETRAINING_METADATA_FILE)
                             for split in ("train", "heldout")],
        "pretraining": [os.path.join(PRETRAINED, names.EVAL_RESULTS_FILE)],
        "import": [os.path.join(MINILM, names.BERT_CONFIG_FILE)],
        "fine_tuning": [os.path.join(CLASSIFIER, names.EVAL_RESULTS_FILE),
                        os.path.join(CLASSIFIER, names.TASK_CONFIG_FILE)],
        "export": [os.path.join(result.get("version_dir", EXPORT_BASE), "saved_model.pb")],
    }.get(key, [])
