"""`pretraining_dataset`: TFRecords of `create_pretraining_data` → what `fit` needs."""

import json
import os

import tensorflow as tf

from keras_bert_app import names


def read_metadata(file_pattern):
    """The metadata written beside the records matching `file_pattern`."""
    files = sorted(tf.io.gfile.glob(file_pattern))
    if not files:
        raise FileNotFoundError(f"No files match {file_pattern}.")
    metadata = None
    for directory in sorted({os.path.dirname(f) for f in files}):
        path = os.path.join(directory, names.PRETRAINING_METADATA_FILE)
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(
                f"{path} is missing: pre-training records must come with the metadata "
                "that create_pretraining_data writes beside them.")
        with tf.io.gfile.GFile(path) as f:
            found = json.load(f)
        if metadata is not None and found != metadata:
            raise ValueError(f"{path} differs from the metadata of the other record "
                             "directories; the records were made with other settings.")
        metadata = found
    return files, metadata


def pretraining_dataset(file_pattern, batch_size, max_seq_length, max_predictions_per_seq,
                        vocab_size=None, vocab_sha256=None, is_training=True, seed=None):
    """Batches `(features, labels)` for `BertPretrainer.fit`.

    Features: `input_word_ids`, `input_mask`, `input_type_ids`, `masked_lm_positions`
    (int32 `[batch, seq]` / `[batch, P]`); labels: `masked_lm_ids`,
    `masked_lm_weights`, `next_sentence_labels`. The metadata beside the records is
    checked against `max_seq_length`, `max_predictions_per_seq` and, when given, the
    model's `vocab_size` and the vocabulary fingerprint: a mismatch is an error, not
    silently wrong training. Training data is shuffled and repeated.
    """
    files, metadata = read_metadata(file_pattern)
    expected = {"max_seq_length": max_seq_length,
                "max_predictions_per_seq": max_predictions_per_seq,
                "vocab_size": vocab_size, "vocab_sha256": vocab_sha256}
    for key, value in expected.items():
        if value is not None and metadata[key] != value:
            raise ValueError(f"The records of {file_pattern} were made with {key}="
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

    def parse(serialized):  # [batch] → (features, labels)
        record = tf.io.parse_example(serialized, spec)
        as_int32 = {k: tf.cast(v, tf.int32) if v.dtype == tf.int64 else v
                    for k, v in record.items()}
        features = {encoder: as_int32[field]
                    for field, encoder in names.RECORD_TO_ENCODER_INPUT.items()}
        features[names.MASKED_LM_POSITIONS] = as_int32[names.MASKED_LM_POSITIONS]
        labels = {k: as_int32[k] for k in (names.MASKED_LM_IDS, names.MASKED_LM_WEIGHTS,
                                           names.NEXT_SENTENCE_LABELS)}
        return features, labels

    # Shuffles follow `repeat`, and never reshuffle per iterator: the stream depends on
    # `seed` alone, not on how many iterators Keras or tf.distribute create.
    dataset = tf.data.Dataset.from_tensor_slices(files)
    if is_training:
        dataset = dataset.repeat().shuffle(len(files), seed=seed,
                                           reshuffle_each_iteration=False)
    dataset = dataset.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 8),
                                 num_parallel_calls=tf.data.AUTOTUNE,
                                 deterministic=seed is not None or not is_training)
    if is_training:
        dataset = dataset.shuffle(10_000, seed=seed, reshuffle_each_iteration=False)
    return (dataset.batch(batch_size, drop_remainder=is_training)
            .map(parse, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))
