"""`create_pretraining_data`: text files → masked-LM/NSP TFRecords + metadata."""

import contextlib
import dataclasses
import multiprocessing
import os
import random
import sys

import keras
import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.files import removed_on_failure
from keras_bert_app.data.corpus_documents import ShardReader
from keras_bert_app.data.instances import InstanceMaker, InstanceSettings
from keras_bert_app.data.pretraining_records import (pretraining_metadata,
                                                     remove_stale_metadata,
                                                     serialize_instance, write_metadata)
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


def read_documents(input_files, tokenizer, skip_bad_records=False, skipped=None):
    """Documents as lists of sentences of token ids, from text files in Google's
    layout (one sentence per line, a blank line between documents) or
    WikiExtractor's (`<doc>` … `</doc>`), decided per file from its content
    (`corpus_documents.ShardReader`).

    A line that is not UTF-8 is an error naming the file, line and byte; with
    `skip_bad_records` it is dropped instead (not a document boundary), and each is
    counted in `skipped` (a dict path → lines dropped, when given) and logged once
    per file."""
    tokenize = batch_tokenizer(tokenizer)
    documents = []
    for path in input_files:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Input file {path} does not exist.")
        reader = ShardReader(path, strict=not skip_bad_records)
        with open(path, "rb") as f:
            texts = list(reader.documents(f))
        dropped = reader.bad_lines
        if dropped and dropped == reader.lines:  # a wrong file, not a dirty one
            raise ValueError(f"{path}: all {reader.lines} lines are bad (skip_bad_records "
                             f"leaves nothing to read); the first: {reader.first_error}")
        documents.extend(d for d in tokenize_documents(texts, tokenize) if d)
        if dropped:
            print(f"WARNING: skip_bad_records: {path}: dropped {dropped} line(s) that "
                  f"are not UTF-8; the first: {reader.first_error}", file=sys.stderr)
        if reader.stray_lines:
            print(f"WARNING: {path}: read as WikiExtractor output (its first line is "
                  f"<doc …>); dropped {reader.stray_lines} line(s) of text outside "
                  "<doc> … </doc>", file=sys.stderr)
        if skipped is not None:
            skipped[path] = dropped
    return documents


def batch_tokenizer(tokenizer):
    """`tokenizer.tokenize_pieces` as one traced function for batches of any size."""
    return tf.function(tokenizer.tokenize_pieces, autograph=False,
                       input_signature=[tf.TensorSpec([None], tf.string)])


def tokenize_documents(documents, tokenize):
    """`documents` (lists of sentence strings) as lists of sentences of token ids,
    through `tokenize` (a batch of strings → ragged ids), a few thousand sentences
    per call. Sentences without a token are dropped, so a document may come back
    empty."""
    sentences = [sentence for document in documents for sentence in document]
    rows = []
    for start in range(0, len(sentences), _TOKENIZE_BATCH):
        ids = tokenize(tf.constant(sentences[start:start + _TOKENIZE_BATCH]))
        flat, splits = ids.flat_values.numpy().tolist(), ids.row_splits.numpy().tolist()
        rows.extend(flat[a:b] for a, b in zip(splits[:-1], splits[1:]))
    out, rows = [], iter(rows)
    for document in documents:
        out.append([ids for ids in (next(rows) for _ in document) if ids])
    return out


def instance_maker_args(config, tokenizer):
    """`InstanceMaker`'s arguments (all but `rng`) for `config` and `tokenizer`."""
    ids = tokenizer.special_ids
    return dict(
        settings=InstanceSettings(config.max_seq_length, config.max_predictions_per_seq,
                                  config.masked_lm_prob, config.short_seq_prob,
                                  config.do_whole_word_mask, config.sentence_prediction),
        cls_id=ids[names.CLS_TOKEN], sep_id=ids[names.SEP_TOKEN],
        mask_id=ids[names.MASK_TOKEN],
        is_suffix=[t.startswith("##") for t in tokenizer.vocab],
        vocab_size=tokenizer.vocab_size)


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
    maker_args = instance_maker_args(config, tokenizer)
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

    metadata = pretraining_metadata(
        config, text_config, vocab_size=tokenizer.vocab_size,
        num_instances=len(instances), num_documents=len(documents),
        files=config.output_files)
    if config.skip_bad_records:  # (absent otherwise: metadata of earlier runs still match)
        metadata["skipped_lines"] = sum(skipped.values())
    write_metadata(config.output_files, metadata)
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
    remove_stale_metadata(config.output_files)
    for partial, path in zip(partials, config.output_files):
        os.replace(partial, path)


def _write_records(instances, config, writers):
    for number, instance in enumerate(instances):
        writers[number % len(writers)].write(serialize_instance(
            instance, config.max_seq_length, config.max_predictions_per_seq))
