"""Batches of raw text for fine-tuning: in-memory texts and labels → `tf.data`, with
tokenization in the input pipeline, dynamic padding and length bucketing.

Used by the task models' `fit` / `evaluate` / `predict` on raw strings and by the
fine-tuning runners, on every Keras backend (tf.data feeds JAX and PyTorch too).
"""

import numpy as np
import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.tf_data_options import finish
from keras_bert_app.text.preprocessing_layer import padding_lengths, segments_of


def is_text_input(x):
    """Whether `x` is raw text a preprocessor takes: strings, a `(text_a, text_b)`
    tuple or a `text_a`/`text_b` dict of them, or a dataset whose inputs are."""
    if isinstance(x, tf.data.Dataset):
        spec = x.element_spec
        spec = spec[0] if isinstance(spec, tuple) else spec
        leaves = tf.nest.flatten(spec)
        return bool(leaves) and all(getattr(s, "dtype", None) == tf.string for s in leaves)
    if isinstance(x, dict):
        x = list(x.values())
    elif not isinstance(x, tuple):
        x = [x]
    for part in x:
        if isinstance(part, str):
            return True
        array = np.asarray(part, dtype=object) if isinstance(part, list) else part
        dtype = getattr(array, "dtype", None)
        if dtype is None:
            return False
        if dtype == object:
            flat = np.ravel(array)
            if not len(flat) or not all(isinstance(v, (str, bytes)) for v in flat):
                return False
        elif getattr(dtype, "kind", None) not in ("U", "S") and dtype != tf.string:
            return False
    return True


def text_columns(x):
    """`x` (see `is_text_input`) as a tuple of 1 or 2 string tensors `[n]`."""
    return tuple(segments_of(x if not isinstance(x, list) else np.asarray(x, object)))


def token_lengths(preprocessor, columns, batch_size=4096):
    """Word pieces per example with special tokens, capped at the sequence length:
    `[n]` int, computed once on the host (the bucketing key).

    Eager: one call of the tokenizer per 4096 rows. A traced function cost ~0.4 s
    per process to trace; eagerly, the first call takes ~0.08–0.18 s (the tokenizer's
    kernels) and later ones ~0.015 s for SST-2's 872 dev sentences (2 cores)."""
    tokenizer = preprocessor._check_vocabulary()
    count = int(columns[0].shape[0])
    lengths = np.full([count], len(columns) + 1, np.int64)
    with tf.device("cpu"):  # string and integer ops: an accelerator would only copy
        for start in range(0, count, batch_size):
            for column in columns:
                lengths[start:start + batch_size] += tokenizer.tokenize_pieces(
                    tf.convert_to_tensor(column[start:start + batch_size], tf.string)
                ).row_lengths().numpy()
    return np.minimum(lengths, preprocessor.sequence_length)


def text_dataset(preprocessor, x, y=None, sample_weight=None, batch_size=32,
                 shuffle=False, seed=None, repeat=False, drop_remainder=False,
                 bucket_by_length=False, skip_batches=0, pad_to_longest=False):
    """Batched, preprocessed `tf.data.Dataset` of in-memory texts and labels.

    Args:
        preprocessor: a `BertTextPreprocessor`; its `dynamic_padding` decides
            whether batches are padded to their own bucket length or to
            `sequence_length`.
        x: strings `[n]`, `(text_a, text_b)` or a `text_a`/`text_b` dict.
        y, sample_weight: arrays with `n` rows, or None.
        shuffle: reshuffle all `n` examples every epoch (from `seed`).
        repeat: an endless stream (training counted in steps).
        bucket_by_length: batch examples of similar length together (training):
            each batch then pads to its own length bucket (`padding_lengths`), so
            little compute goes to padding and only a few shapes occur. Needs
            `repeat` and `drop_remainder` so that every batch is full.
        skip_batches: batches to skip first (a resumed run), before any
            tokenization: the skip costs almost nothing.
        pad_to_longest: with the preprocessor's `dynamic_padding`, each batch pads
            to its own longest row instead of its length bucket: for a model that
            predicts without XLA, where a new shape costs no compilation and every
            padded position costs compute. (Sorted by length, SST-2's 872 dev
            sentences in batches of 32: 13,600 positions instead of 22,016.)

    Returns:
        A dataset of `(inputs, y, sample_weight)` as Keras' `fit` unpacks them
        (`inputs` alone when `y` and `sample_weight` are None).
    """
    columns = text_columns(x)
    count = int(columns[0].shape[0])
    if count == 0:
        raise ValueError("No examples: the text inputs are empty.")
    extras = [np.asarray(v) for v in (y, sample_weight) if v is not None]
    for name, value in (("y", y), ("sample_weight", sample_weight)):
        if value is not None and len(value) != count:
            raise ValueError(f"{name} has {len(value)} rows but the texts have {count}.")
    if bucket_by_length and not (repeat and drop_remainder):
        raise ValueError("bucket_by_length needs repeat=True and drop_remainder=True.")

    elements = (columns,) + tuple(extras)
    if bucket_by_length:
        lengths = token_lengths(preprocessor, columns)
        bounds = np.asarray(padding_lengths(preprocessor.sequence_length))
        buckets = np.searchsorted(bounds, lengths).astype(np.int64)  # first bound >= length
        elements += (buckets,)
    dataset = tf.data.Dataset.from_tensor_slices(elements)
    if shuffle:
        dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    if bucket_by_length:
        dataset = dataset.group_by_window(
            key_func=lambda *e: e[-1],
            reduce_func=lambda key, window: window.batch(batch_size, drop_remainder=True),
            window_size=batch_size)
        dataset = dataset.map(lambda *e: e[:-1])
    else:
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if skip_batches:
        dataset = dataset.skip(skip_batches)

    # `pack` traced once per preprocessor, not once per dataset. Pure graph code:
    # AutoGraph's conversion would cost seconds per dataset (measured 4-9 s on 2
    # cores) and changes nothing.
    pack = preprocessor.batch_pack_function(len(columns), pad_to_longest)

    @tf.autograph.experimental.do_not_convert
    def preprocess(texts, *labels):
        inputs = pack(*texts)
        return (inputs,) + labels if labels else inputs

    dataset = dataset.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=True)
    return finish(dataset.prefetch(tf.data.AUTOTUNE))


def preprocess_dataset(preprocessor, dataset):
    """A user's dataset of raw-text batches (`x` or `(x, y[, sample_weight])`),
    preprocessed."""
    spec = dataset.element_spec
    if isinstance(spec, tuple) and len(spec) > 1 and \
            getattr(spec[1], "dtype", None) == tf.string:
        raise ValueError("The dataset's elements are (strings, strings): read as "
                         "(x, y), the second texts would be labels. Give pairs as a "
                         f"dict {{'{names.TEXT_A}': …, '{names.TEXT_B}': …}}, or "
                         "((text_a, text_b), y).")
    for leaf in tf.nest.flatten(spec[0] if isinstance(spec, tuple) else spec):
        if leaf.shape.rank == 0:
            raise ValueError("The dataset yields single strings: batch it first "
                             "(dataset.batch(32)).")

    @tf.autograph.experimental.do_not_convert  # pure graph code (see text_dataset)
    def preprocess(*element):
        x = element[0]
        inputs = preprocessor.pack(segments_of(x))
        return (inputs,) + tuple(element[1:]) if len(element) > 1 else inputs

    return finish(dataset.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE,
                              deterministic=True).prefetch(tf.data.AUTOTUNE))
