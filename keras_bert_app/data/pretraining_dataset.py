"""`pretraining_dataset`: pre-training TFRecords → what `fit` needs.

Reads `create_pretraining_data`'s records (checked against the metadata written
beside them) and records made by Google's or TF Model Garden's scripts, which carry no
metadata: their lengths are then given by the caller and checked against the first
record of every file.
"""

import json
import os
import re
import sys

import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.data.input_format import check_record_lengths
from keras_bert_app.tf_data_options import finish

# Ends the message of the in-graph check of word ids of records without metadata;
# the training runner finds it to report the error in one line.
IDS_BEYOND_VOCAB = "made with another vocabulary"


def match_files(file_pattern):
    """The sorted files of a glob pattern, or of a list of paths (as a runner that
    already chose them passes it); an error when there are none."""
    if isinstance(file_pattern, (list, tuple)):
        files = sorted(file_pattern)
    else:
        files = sorted(tf.io.gfile.glob(file_pattern))
    if not files:
        raise FileNotFoundError(f"No files match {file_pattern}.")
    return files


def read_metadata(file_pattern, required=True):
    """`(files, metadata)` of the records matching `file_pattern` (a glob or a list
    of files); metadata is None for records without it (allowed when not
    `required`). Directories that disagree, or where only some have metadata, are an
    error."""
    files = match_files(file_pattern)
    found = {}
    for directory in sorted({os.path.dirname(f) for f in files}):
        path = os.path.join(directory, names.PRETRAINING_METADATA_FILE)
        if tf.io.gfile.exists(path):
            with tf.io.gfile.GFile(path) as f:
                try:
                    found[path] = json.load(f)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path} is not valid JSON: {error}") from None
        else:
            found[path] = None
    values = list(found.values())
    if any(v is None for v in values):
        missing = [p for p, v in found.items() if v is None]
        if required or len(missing) < len(values):
            raise FileNotFoundError(
                f"{missing[0]} is missing: the records must come with the metadata that "
                "create_pretraining_data writes beside them" +
                ("." if required else " (or none of the record directories may have it)."))
        return files, None
    for path, metadata in found.items():
        if metadata != values[0]:
            raise ValueError(f"{path} differs from the metadata of the other record "
                             "directories; the records were made with other settings.")
    return files, values[0]


def pretraining_dataset(file_pattern, batch_size, max_seq_length, max_predictions_per_seq,
                        vocab_size=None, vocab_sha256=None, is_training=True, seed=None,
                        require_metadata=True, skip_corrupt_records=False, skip_batches=0):
    """Batches `(features, labels)` for `BertPretrainer.fit`.

    Features: `input_word_ids`, `input_mask`, `input_type_ids`, `masked_lm_positions`
    (int32 `[batch, seq]` / `[batch, P]`); labels: `masked_lm_ids`,
    `masked_lm_weights`, `next_sentence_labels`. The metadata beside the records is
    checked against `max_seq_length`, `max_predictions_per_seq` and, when given, the
    model's `vocab_size` and the vocabulary fingerprint: a mismatch is an error, not
    silently wrong training. With `require_metadata=False`, records without metadata
    (Google's) are read with the given lengths, checked against each file's first
    record, and word ids at or above `vocab_size` fail the batch that has them.
    Training data is shuffled and repeated.

    Args:
        skip_corrupt_records: a file whose framing breaks (a corrupt or truncated
            record) contributes its records up to that point and the rest is
            skipped, with a warning naming the file and byte offset; without it the
            corruption is an error (see `describe_corrupt_record`).
        skip_batches: batches of the stream to drop first (cheaply: before parsing),
            to resume a run where it stopped; the stream depends on `seed` alone.
    """
    if skip_batches and seed is None:
        raise ValueError("skip_batches needs a seed: without one the stream differs "
                         "every time, so skipping would not resume it.")
    if isinstance(skip_batches, bool) or not isinstance(skip_batches, int) or \
            skip_batches < 0:
        raise ValueError(f"skip_batches={skip_batches!r} must be a non-negative integer.")
    files, metadata = read_metadata(file_pattern, required=require_metadata)
    if metadata is None:
        check_record_lengths(files, max_seq_length, max_predictions_per_seq)
    else:
        expected = {"max_seq_length": max_seq_length,
                    "max_predictions_per_seq": max_predictions_per_seq,
                    "vocab_size": vocab_size, "vocab_sha256": vocab_sha256}
        for key, value in expected.items():
            if value is not None and metadata[key] != value:
                raise ValueError(f"The records of {files[0]} were made with {key}="
                                 f"{metadata[key]!r}, but {value!r} was asked for.")
    seq, predictions = max_seq_length, max_predictions_per_seq
    spec = {
        names.RECORD_INPUT_IDS: tf.io.FixedLenFeature([seq], tf.int64),
        names.RECORD_INPUT_MASK: tf.io.FixedLenFeature([seq], tf.int64),
        names.RECORD_SEGMENT_IDS: tf.io.FixedLenFeature([seq], tf.int64),
        names.MASKED_LM_POSITIONS: tf.io.FixedLenFeature([predictions], tf.int64),
        names.MASKED_LM_IDS: tf.io.FixedLenFeature([predictions], tf.int64),
        names.MASKED_LM_WEIGHTS: tf.io.FixedLenFeature([predictions], tf.float32),
        names.NEXT_SENTENCE_LABELS: tf.io.FixedLenFeature([1], tf.int64),
    }
    # Metadata vouches for the vocabulary the records were made with, not for their
    # bytes (a shard copied in from another run, a hand-edited record): every batch
    # is checked, at the cost of a comparison per id. An id beyond the embedding
    # table would fail the step on CPU, and read zeros (silently) on GPU.
    check_ids = vocab_size is not None
    described = file_pattern if isinstance(file_pattern, str) else \
        f"{files[0]}{' …' if len(files) > 1 else ''}"

    @tf.autograph.experimental.do_not_convert  # pure graph code: no conversion cost
    def parse(serialized):  # [batch] → (features, labels)
        record = tf.io.parse_example(serialized, spec)
        if check_ids:  # word ids must fit the model's embedding table
            for key in (names.RECORD_INPUT_IDS, names.MASKED_LM_IDS):
                with tf.control_dependencies([tf.debugging.assert_less(
                        record[key], tf.constant(vocab_size, tf.int64),
                        message=f"records of {described} hold {key} >= the model "
                                f"vocab_size {vocab_size}: {IDS_BEYOND_VOCAB}")]):
                    record[key] = tf.identity(record[key])
        as_int32 = {k: tf.cast(v, tf.int32) if v.dtype == tf.int64 else v
                    for k, v in record.items()}
        features = {encoder: as_int32[field]
                    for field, encoder in names.RECORD_TO_ENCODER_INPUT.items()}
        features[names.MASKED_LM_POSITIONS] = as_int32[names.MASKED_LM_POSITIONS]
        labels = {k: as_int32[k] for k in (names.MASKED_LM_IDS, names.MASKED_LM_WEIGHTS,
                                           names.NEXT_SENTENCE_LABELS)}
        return features, labels

    def read(path, size):
        if skip_corrupt_records:
            return _read_skipping_corruption(path, size)
        return tf.data.TFRecordDataset(path)

    # Shuffles follow `repeat`, and never reshuffle per iterator: the stream depends on
    # `seed` alone, not on how many iterators Keras or tf.distribute create.
    sizes = [tf.io.gfile.stat(f).length for f in files]
    dataset = tf.data.Dataset.from_tensor_slices((files, tf.constant(sizes, tf.int64)))
    if is_training:
        dataset = dataset.repeat().shuffle(len(files), seed=seed,
                                           reshuffle_each_iteration=False)
    dataset = dataset.interleave(read, cycle_length=min(len(files), 8),
                                 num_parallel_calls=tf.data.AUTOTUNE,
                                 deterministic=seed is not None or not is_training)
    if is_training:
        dataset = dataset.shuffle(10_000, seed=seed, reshuffle_each_iteration=False)
    dataset = dataset.batch(batch_size, drop_remainder=is_training)
    if skip_batches:
        dataset = dataset.skip(skip_batches)
    return finish(dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
                  .prefetch(tf.data.AUTOTUNE))


def _read_skipping_corruption(path, size):
    """The records of `path` (a scalar string tensor; `size` its length in bytes) up
    to its first corrupt one. TFRecord framing cannot be trusted past a bad length or
    CRC, so the rest of the file is skipped: the bytes read are compared with the
    file's size at its end, and a short read is logged with the file and offset."""
    records = tf.data.TFRecordDataset(path).ignore_errors()
    end_marker = tf.data.Dataset.from_tensors((tf.constant(b""), tf.constant(True)))
    tagged = records.map(lambda r: (r, tf.constant(False))).concatenate(end_marker)
    zero = tf.constant(0, tf.int64)

    def step(state, element):  # state: (bytes read, records read)
        consumed, count = state
        record, is_end = element

        def warn():
            tf.print("WARNING: skip_corrupt_records:", path, ": corrupt or truncated "
                     "record at byte offset", consumed, "after", count, "good records; "
                     "skipped the remaining", size - consumed, "bytes of the file.",
                     output_stream=sys.stderr)
            return tf.constant(True)

        logged = tf.cond(is_end & (consumed < size), warn, lambda: tf.constant(False))
        with tf.control_dependencies([logged]):
            is_end = tf.identity(is_end)
        # A record's data is framed by 12 bytes before (length, its CRC) and 4 after.
        framed = tf.cast(tf.strings.length(record), tf.int64) + 16
        return (consumed + tf.where(is_end, zero, framed),
                count + tf.where(is_end, zero, 1)), (record, is_end)

    return (tagged.scan((zero, zero), step)
            .filter(lambda record, is_end: tf.logical_not(is_end))
            .map(lambda record, is_end: record))


_CORRUPT_AT = re.compile(r"(corrupted|truncated) record at (\d+)")


def describe_corrupt_record(files):
    """Finds the first file of `files` whose TFRecord framing breaks and says where,
    in one line (for a `DataLossError` that names no file); None when all read."""
    for path in files:
        try:
            for _ in tf.data.TFRecordDataset(path, buffer_size=1 << 20).batch(65536):
                pass
        except tf.errors.DataLossError as error:
            found = _CORRUPT_AT.search(str(error))
            where = f"at byte offset {found.group(2)}" if found else "(offset unknown)"
            kind = found.group(1) if found else "corrupt"
            return (f"{path}: {kind} record {where}. Remove or rewrite the file, or pass "
                    "skip_corrupt_records (--skip_corrupt_records) to skip the rest of "
                    "a file from its first corrupt record on.")
    return None


def describe_ids_beyond_vocab(files, vocab_size):
    """Finds the first record of `files` holding a word id at or above `vocab_size`
    and names it in one line (file, record number from 1, field, position and
    value), for the in-graph check's error, which can name no record; None when
    every id fits."""
    keys = (names.RECORD_INPUT_IDS, names.MASKED_LM_IDS)
    for path in files:
        number = 0
        for record in tf.data.TFRecordDataset(path, buffer_size=1 << 20):
            number += 1
            example = tf.train.Example.FromString(record.numpy())
            for key in keys:
                values = example.features.feature[key].int64_list.value
                for position, value in enumerate(values):
                    if value >= vocab_size:
                        return (f"{path}: record {number}: {key}[{position}]={value} is "
                                f"not below the model vocab_size {vocab_size}: "
                                f"{IDS_BEYOND_VOCAB}")
    return None
