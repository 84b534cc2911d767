"""`create_pretraining_data`: text files → masked-LM/NSP TFRecords + metadata."""

import contextlib
import dataclasses
import json
import multiprocessing
import os
import random
import sys

import keras
import numpy as np
import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.files import removed_on_failure
from keras_bert_app.data.instances import InstanceMaker, InstanceSettings
from keras_bert_app.text.text_config import TextConfig
from keras_bert_app.text.tokenizer import BertTokenizer

_TOKENIZE_BATCH = 4096
# Instances are made in tasks of this many documents, each with its own random
# stream (seeded by random_seed, round and first document): the records depend on the
# seed alone, not on the number of workers.
_DOCUMENTS_PER_TASK = 256


@dataclasses.dataclass(frozen=True)
class PretrainingDataConfig:
    """Google's `create_pretraining_data.py` flags (and its defaults)."""

    input_files: tuple
    output_files: tuple
    vocab_file: str
    do_lower_case: bool = True
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    dupe_factor: int = 10
    short_seq_prob: float = 0.1
    random_seed: int = 12345
    do_whole_word_mask: bool = False
    sentence_prediction: str = "nsp"
    num_workers: int = 1  # processes making instances (tokenization runs in-graph)
    # Lines that are not UTF-8 are dropped (counted in the metadata and logged)
    # instead of stopping the run with an error naming the first one.
    skip_bad_records: bool = False

    def __post_init__(self):
        if self.sentence_prediction not in names.SENTENCE_PREDICTION_MODES:
            raise ValueError(f"sentence_prediction={self.sentence_prediction!r}; expected "
                             f"one of {list(names.SENTENCE_PREDICTION_MODES)}.")
        if self.max_seq_length < 5:
            raise ValueError(f"max_seq_length={self.max_seq_length} is too short for "
                             "[CLS] A [SEP] B [SEP].")
        if not 0 < self.masked_lm_prob < 1:
            raise ValueError(f"masked_lm_prob={self.masked_lm_prob} must be in (0, 1).")
        if self.max_predictions_per_seq < 1 or self.dupe_factor < 1 or self.num_workers < 1:
            raise ValueError("max_predictions_per_seq, dupe_factor and num_workers must be "
                             "positive.")
        if not self.input_files or not self.output_files:
            raise ValueError("Give at least one input file and one output file.")


def _decode_line(path, number, offset, raw):
    """One line of an input file as text; an error naming the file, the line and the
    byte when it is not UTF-8 (a latin-1 or UTF-16 file, or one cut inside a
    character). Google's reader drops such bytes silently (`errors="ignore"`): a
    UTF-16 corpus would then be "pre-trained" on its every other byte."""
    advice = ("re-encode the file as UTF-8, or pass skip_bad_records "
              "(--skip_bad_records) to drop such lines.")
    try:
        text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}:{number}: not UTF-8 ({error.reason}, byte "
                         f"{offset + error.start} of the file); {advice}") from None
    if "\x00" in text:  # valid UTF-8, but UTF-16 without a BOM (or binary) reads so
        raise ValueError(f"{path}:{number}: not UTF-8 text (a NUL byte, byte "
                         f"{offset + raw.index(0)} of the file: UTF-16 or binary?); "
                         f"{advice}")
    return text


def read_documents(input_files, tokenizer, skip_bad_records=False, skipped=None):
    """Documents as lists of sentences of token ids: one sentence per line, a blank
    line between documents (Google's input format).

    A line that is not UTF-8 is an error naming the file, line and byte; with
    `skip_bad_records` it is dropped instead (not a document boundary), and each is
    counted in `skipped` (a dict path → lines dropped, when given) and logged once
    per file."""
    tokenize = tf.function(tokenizer.tokenize_pieces, autograph=False)
    documents, lines = [[]], []

    def flush():
        if not lines:
            return
        for start in range(0, len(lines), _TOKENIZE_BATCH):
            ids = tokenize(tf.constant([l for l in lines[start:start + _TOKENIZE_BATCH]
                                        if l is not None]))
            flat, splits = ids.flat_values.numpy().tolist(), ids.row_splits.numpy()
            rows = iter(flat[a:b] for a, b in zip(splits[:-1], splits[1:]))
            for line in lines[start:start + _TOKENIZE_BATCH]:
                if line is None:
                    documents.append([])
                else:
                    sentence = next(rows)
                    if sentence:
                        documents[-1].append(sentence)
        lines.clear()

    for path in input_files:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Input file {path} does not exist.")
        dropped, first_error, offset = 0, None, 0
        with open(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                try:
                    line = _decode_line(path, number, offset, raw).strip()
                except ValueError as error:
                    if not skip_bad_records:
                        raise
                    dropped, first_error = dropped + 1, first_error or error
                    continue
                finally:
                    offset += len(raw)
                lines.append(line if line else None)  # None: a document boundary
                if len(lines) >= _TOKENIZE_BATCH:
                    flush()
        if dropped and dropped == number:  # a wrong file, not a dirty one
            raise ValueError(f"{path}: all {number} lines are bad (skip_bad_records "
                             f"leaves nothing to read); the first: {first_error}")
        lines.append(None)  # files never share a document
        flush()
        if dropped:
            print(f"WARNING: skip_bad_records: {path}: dropped {dropped} line(s) that "
                  f"are not UTF-8; the first: {first_error}", file=sys.stderr)
        if skipped is not None:
            skipped[path] = dropped
    return [d for d in documents if d]


def create_pretraining_data(config, verbose=1):
    """Writes the TFRecords of `config.output_files` and their metadata file.

    Deterministic for `config.random_seed`. Returns the metadata dict.
    """
    text_config = TextConfig.for_vocab(config.vocab_file, config.do_lower_case)
    tokenizer = BertTokenizer(config.vocab_file, lower_case=config.do_lower_case)
    skipped = {}
    documents = read_documents(config.input_files, tokenizer,
                               skip_bad_records=config.skip_bad_records, skipped=skipped)
    if not documents:
        raise ValueError(f"No text in {list(config.input_files)}.")
    rng = random.Random(config.random_seed)
    rng.shuffle(documents)
    ids = tokenizer.special_ids
    maker_args = dict(
        settings=InstanceSettings(config.max_seq_length, config.max_predictions_per_seq,
                                  config.masked_lm_prob, config.short_seq_prob,
                                  config.do_whole_word_mask, config.sentence_prediction),
        cls_id=ids[names.CLS_TOKEN], sep_id=ids[names.SEP_TOKEN],
        mask_id=ids[names.MASK_TOKEN],
        is_suffix=[t.startswith("##") for t in tokenizer.vocab],
        vocab_size=tokenizer.vocab_size)
    tasks = [(config.random_seed, round_, start,
              min(start + _DOCUMENTS_PER_TASK, len(documents)))
             for round_ in range(config.dupe_factor)
             for start in range(0, len(documents), _DOCUMENTS_PER_TASK)]
    progress = keras.utils.Progbar(config.dupe_factor * len(documents), verbose=verbose,
                                   unit_name="document")
    instances = []
    global _TASK_STATE
    _TASK_STATE = (documents, maker_args)
    pool = None
    try:
        if config.num_workers > 1 and len(tasks) > 1:
            # fork: the workers share the tokenized documents without copying them,
            # and run pure Python (no TensorFlow) in the child.
            pool = multiprocessing.get_context("fork").Pool(config.num_workers)
        made = pool.imap(_make_instances, tasks) if pool else map(_make_instances, tasks)
        for task, task_instances in zip(tasks, made):
            instances.extend(task_instances)
            progress.add(task[3] - task[2])
    finally:
        if pool is not None:
            pool.terminate()  # as `with Pool()` does; every result is in by now
        _TASK_STATE = None
    rng.shuffle(instances)
    _write(instances, config)

    metadata = {
        "vocab_sha256": text_config.vocab_sha256, "vocab_size": tokenizer.vocab_size,
        "do_lower_case": config.do_lower_case, "max_seq_length": config.max_seq_length,
        "max_predictions_per_seq": config.max_predictions_per_seq,
        "masked_lm_prob": config.masked_lm_prob,
        "do_whole_word_mask": config.do_whole_word_mask,
        "sentence_prediction": config.sentence_prediction,
        "dupe_factor": config.dupe_factor, "short_seq_prob": config.short_seq_prob,
        "random_seed": config.random_seed, "num_instances": len(instances),
        "num_documents": len(documents),
        "files": [os.path.basename(f) for f in config.output_files],
    }
    if config.skip_bad_records:  # (absent otherwise: metadata of earlier runs still match)
        metadata["skipped_lines"] = sum(skipped.values())
    directories = {os.path.dirname(os.path.abspath(f)) for f in config.output_files}
    for directory in directories:
        # Written whole or not at all (a reader never sees half a metadata file).
        path = os.path.join(directory, names.PRETRAINING_METADATA_FILE)
        with removed_on_failure(path + ".partial") as partial:
            with open(partial, "w") as f:
                json.dump(metadata, f, indent=2, sort_keys=True)
                f.write("\n")
        os.replace(partial, path)
    return metadata


_TASK_STATE = None  # (documents, InstanceMaker arguments) while making instances


def _make_instances(task):
    seed, round_, start, stop = task
    documents, maker_args = _TASK_STATE
    maker = InstanceMaker(rng=random.Random(f"{seed}/{round_}/{start}"), **maker_args)
    out = []
    for index in range(start, stop):
        out.extend(maker.from_document(documents, index))
    return out


def _write(instances, config):
    """Writes the records to `<output>.partial` files, renamed to the outputs once
    every writer is closed; a failure (an error, a full disk) removes them, leaving
    an earlier run's records and metadata as they were. The old metadata is removed
    before the renames (the new one is written last): a kill between the two leaves
    records without metadata — refused by the reader — never new records beside an
    old description."""
    for path in config.output_files:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    partials = [path + ".partial" for path in config.output_files]
    with contextlib.ExitStack() as cleanup:
        for partial in partials:
            cleanup.enter_context(removed_on_failure(partial))
        writers = [tf.io.TFRecordWriter(partial) for partial in partials]
        try:
            _write_records(instances, config, writers)
        finally:
            for writer in writers:
                writer.close()
    for directory in {os.path.dirname(os.path.abspath(f)) for f in config.output_files}:
        stale = os.path.join(directory, names.PRETRAINING_METADATA_FILE)
        if os.path.exists(stale):
            os.remove(stale)
    for partial, path in zip(partials, config.output_files):
        os.replace(partial, path)


def _write_records(instances, config, writers):
    seq, predictions = config.max_seq_length, config.max_predictions_per_seq
    for number, instance in enumerate(instances):
        length, masked = len(instance.tokens), len(instance.masked_lm_positions)
        features = {
            names.RECORD_INPUT_IDS: _ints(instance.tokens + [0] * (seq - length)),
            names.RECORD_INPUT_MASK: _ints([1] * length + [0] * (seq - length)),
            names.RECORD_SEGMENT_IDS: _ints(instance.segment_ids + [0] * (seq - length)),
            names.MASKED_LM_POSITIONS: _ints(instance.masked_lm_positions
                                             + [0] * (predictions - masked)),
            names.MASKED_LM_IDS: _ints(instance.masked_lm_ids + [0] * (predictions - masked)),
            names.MASKED_LM_WEIGHTS: tf.train.Feature(float_list=tf.train.FloatList(
                value=[1.0] * masked + [0.0] * (predictions - masked))),
            names.NEXT_SENTENCE_LABELS: _ints([instance.next_sentence_label]),
        }
        example = tf.train.Example(features=tf.train.Features(feature=features))
        # Canonical bytes: protobuf orders map entries (the features) per process.
        writers[number % len(writers)].write(example.SerializeToString(deterministic=True))


def _ints(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=np.asarray(values, np.int64)))
