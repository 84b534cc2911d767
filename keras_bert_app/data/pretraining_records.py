"""What both pre-training data tools write: the `tf.train.Example` of an instance
(Google's feature names) and `pretraining_metadata.json` beside the records, which
`pretraining_dataset` and `run_pretraining` check. One definition, so the
single-process tool and the Beam pipeline cannot drift apart."""

import json
import os

import numpy as np
import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.files import removed_on_failure


def serialize_instance(instance, max_seq_length, max_predictions_per_seq):
    """The canonical bytes of one `Instance` as a `tf.train.Example`, padded to
    `max_seq_length` and `max_predictions_per_seq`."""
    seq, predictions = max_seq_length, max_predictions_per_seq
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
    return example.SerializeToString(deterministic=True)


def _ints(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=np.asarray(values, np.int64)))


def pretraining_metadata(config, text_config, vocab_size, num_instances, num_documents,
                         files):
    """The metadata dict of records made with `config` (a `PretrainingDataConfig`)."""
    return {
        "vocab_sha256": text_config.vocab_sha256, "vocab_size": vocab_size,
        "do_lower_case": config.do_lower_case, "max_seq_length": config.max_seq_length,
        "max_predictions_per_seq": config.max_predictions_per_seq,
        "masked_lm_prob": config.masked_lm_prob,
        "do_whole_word_mask": config.do_whole_word_mask,
        "sentence_prediction": config.sentence_prediction,
        "dupe_factor": config.dupe_factor, "short_seq_prob": config.short_seq_prob,
        "random_seed": config.random_seed, "num_instances": num_instances,
        "num_documents": num_documents,
        "files": [os.path.basename(f) for f in files],
    }


def metadata_paths(output_files):
    """The metadata file beside each folder of `output_files` (local or remote)."""
    directories = sorted({os.path.dirname(os.path.abspath(f)) if "://" not in f
                          else f.rsplit("/", 1)[0] for f in output_files})
    return [os.path.join(d, names.PRETRAINING_METADATA_FILE) if "://" not in d
            else f"{d}/{names.PRETRAINING_METADATA_FILE}" for d in directories]


def remove_stale_metadata(output_files):
    """Removes the metadata of an earlier run beside `output_files`: records being
    replaced must never sit beside an old description (a reader refuses records
    without metadata)."""
    for path in metadata_paths(output_files):
        if tf.io.gfile.exists(path):
            tf.io.gfile.remove(path)


def write_metadata(output_files, metadata):
    """Writes `metadata` beside `output_files` (local or remote, through
    `tf.io.gfile`), each file whole or not at all."""
    for path in metadata_paths(output_files):
        text = json.dumps(metadata, indent=2, sort_keys=True) + "\n"
        if "://" in path:  # object stores write a file whole on close
            with tf.io.gfile.GFile(path, "w") as f:
                f.write(text)
            continue
        with removed_on_failure(path + ".partial") as partial:
            with open(partial, "w") as f:
                f.write(text)
        os.replace(partial, path)
