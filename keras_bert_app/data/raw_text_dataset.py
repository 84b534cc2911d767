"""`raw_text_pretraining_dataset`: pre-training batches straight from text files, in
the TF graph — segment pairs (NSP or SOP) and masking drawn anew every epoch."""

import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.data.masking import DynamicMasker, MaskingSettings
from keras_bert_app.text.packing import pack_inputs, pair_keep_lengths, ragged_slice
from keras_bert_app.text.tokenizer import BertTokenizer


def raw_text_pretraining_dataset(file_pattern, vocab_file, batch_size, do_lower_case=True,
                                 max_seq_length=128, max_predictions_per_seq=20,
                                 masked_lm_prob=0.15, short_seq_prob=0.1,
                                 sentence_prediction="nsp", do_whole_word_mask=False,
                                 is_training=True, seed=None, shuffle_buffer_size=2048):
    """Batches `(features, labels)` for `BertPretrainer.fit`, made from raw text.

    Input is Google's format: one sentence per line, a blank line between documents.
    Each file is read whole and tokenized in the graph. Documents are cut into
    chunks of whole sentences up to a target length (`max_seq_length - 3`, or with
    probability `short_seq_prob` a random shorter one), as Google's
    `create_pretraining_data` does. Each chunk becomes one sequence:

    - `nsp`: A = the chunk's first sentences (a random number), B = the rest
      (label 0) or, half the time, sentences of another batch member's chunk
      (label 1; chunks are shuffled before batching, so almost always another
      document's).
    - `sop`: A and B as above from one chunk, swapped half the time (label 1).
    - `none`: the chunk as one segment (masked LM only; labels are all 0).

    Pairs are trimmed to fit like Google's `truncate_seq_pair` (from the longer,
    front or back at random), then masked by `DynamicMasker`. Everything random is
    drawn after `repeat`, so every epoch sees new pairs and new masks; with `seed`
    the stream is reproducible (it does not depend on how many iterators are made).

    Differences from Google's offline algorithm: the sentences of a chunk not used
    when B is random are not put back for the next sequence, and the random B comes
    from a chunk in the same batch rather than from any document.
    """
    if sentence_prediction not in names.SENTENCE_PREDICTION_MODES:
        raise ValueError(f"sentence_prediction={sentence_prediction!r}; expected one of "
                         f"{list(names.SENTENCE_PREDICTION_MODES)}.")
    if batch_size < 2 and sentence_prediction == "nsp":
        raise ValueError("NSP draws random segments from the rest of the batch: "
                         "batch_size must be at least 2.")
    files = sorted(tf.io.gfile.glob(file_pattern))
    if not files:
        raise FileNotFoundError(f"No files match {file_pattern}.")
    tokenizer = BertTokenizer(vocab_file, lower_case=do_lower_case)
    special = tokenizer.special_ids
    masker = DynamicMasker(MaskingSettings(max_predictions_per_seq, masked_lm_prob,
                                           do_whole_word_mask), tokenizer.vocab)
    pair = sentence_prediction != "none"
    max_tokens = max_seq_length - (3 if pair else 2)
    if max_tokens < 2:
        raise ValueError(f"max_seq_length={max_seq_length} is too short.")

    def documents(path):  # one file → documents, each `[sentences, pieces]`
        lines = tf.strings.strip(tf.strings.split(tf.io.read_file(path), "\n"))
        return tf.data.Dataset.from_tensor_slices(_group_documents(tokenizer, lines)).filter(
            lambda doc: tf.size(doc.flat_values) > 0)

    def chunks(document, seed):  # [sentences, pieces] → chunks of whole sentences
        lengths = tf.cast(document.row_lengths(), tf.int32)
        count = tf.shape(lengths)[0]
        short_seed, length_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        short = tf.random.stateless_uniform([count], short_seed) < short_seq_prob
        targets = tf.where(short, tf.random.stateless_uniform(
            [count], length_seed, 2, max_tokens + 1, dtype=tf.int32), max_tokens)

        def step(state, length):  # Google: add sentences until the target is reached
            chunk, filled = state
            full = filled + length >= tf.gather(targets, chunk)
            return (tf.where(full, chunk + 1, chunk), tf.where(full, 0, filled + length))

        ends, _ = tf.scan(step, lengths, initializer=(tf.constant(0), tf.constant(0)))
        chunk_of_sentence = tf.concat([[0], ends[:-1]], 0)  # the state before it
        grouped = tf.RaggedTensor.from_value_rowids(document, tf.cast(chunk_of_sentence,
                                                                      tf.int64))
        tokens = grouped.merge_dims(1, 2)  # [chunks, pieces]
        boundaries = tf.cumsum(tf.cast(grouped.row_lengths(axis=2), tf.int32), axis=1)
        return tf.data.Dataset.from_tensor_slices((tokens, boundaries))

    def sequences(tokens, boundaries, seed):  # a batch of chunks → packed and masked
        return _make_batch(tokens, boundaries, seed, sentence_prediction, max_tokens,
                           max_seq_length, special, masker)

    dataset = tf.data.Dataset.from_tensor_slices(files)
    if is_training:  # repeat first: everything below is drawn anew each epoch
        dataset = dataset.repeat().shuffle(len(files), seed=seed,
                                           reshuffle_each_iteration=False)
    dataset = dataset.interleave(documents, cycle_length=min(len(files), 4),
                                 num_parallel_calls=tf.data.AUTOTUNE,
                                 deterministic=True)
    dataset = tf.data.Dataset.zip((dataset, _seeds(seed, 1)))
    dataset = dataset.flat_map(chunks)
    if is_training:
        dataset = dataset.shuffle(shuffle_buffer_size, seed=seed,
                                  reshuffle_each_iteration=False)
    dataset = dataset.ragged_batch(batch_size, drop_remainder=is_training)
    dataset = tf.data.Dataset.zip((dataset, _seeds(seed, 2)))
    dataset = dataset.map(lambda chunk, seed: sequences(*chunk, seed),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _group_documents(tokenizer, lines):
    """`[documents, sentences, pieces]` from a file's lines; blank lines end documents."""
    blank = tf.equal(lines, "")
    document = tf.cumsum(tf.cast(blank, tf.int64))
    kept = tf.logical_not(blank)
    pieces = tokenizer.tokenize_pieces(tf.boolean_mask(lines, kept))  # [lines, pieces]
    document = tf.boolean_mask(document, kept)
    nonempty = pieces.row_lengths() > 0  # a line of only control characters
    pieces = tf.ragged.boolean_mask(pieces, nonempty)
    document = tf.boolean_mask(document, nonempty)
    first = tf.reduce_min(tf.concat([document, [0]], 0))
    return tf.RaggedTensor.from_value_rowids(pieces, document - first)


def _seeds(seed, salt):
    """An endless stream of int64 `[2]` stateless seeds."""
    base = None if seed is None else seed * 1_000_003 + salt
    return tf.data.Dataset.random(seed=base).batch(2)


def _make_batch(tokens, boundaries, seed, mode, max_tokens, seq_length, special, masker):
    tokens = tf.cast(tokens, tf.int32)  # [batch, pieces] ragged
    boundaries = tf.cast(boundaries, tf.int32)  # [batch, sentences] ragged: sentence ends
    seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 8))
    batch = tf.shape(boundaries.row_lengths())[0]
    total = tf.cast(tokens.row_lengths(), tf.int32)  # [batch]
    sentences = tf.cast(boundaries.row_lengths(), tf.int32)  # [batch]

    def uniform(i):
        return tf.random.stateless_uniform([batch], seeds[i])

    labels = tf.zeros([batch], tf.int32)
    if mode == "none":
        segments = [tokens]  # pack_inputs keeps the first max_tokens
    else:
        # A ends after a random number (1 .. sentences-1) of sentences; a one-sentence
        # chunk is split at a random token instead (SOP) or gets a random B (NSP).
        cut = 1 + tf.cast(uniform(0) * tf.cast(tf.maximum(sentences - 1, 1), tf.float32),
                          tf.int32)
        a_length = tf.gather(boundaries, cut - 1, batch_dims=1)
        a_length = tf.where(sentences > 1, a_length, total)
        if mode == "sop":
            token_cut = 1 + tf.cast(uniform(1) * tf.cast(tf.maximum(total - 1, 1),
                                                         tf.float32), tf.int32)
            a_length = tf.where(sentences > 1, a_length, tf.minimum(token_cut, total))
        zero = tf.zeros_like(total)
        a = ragged_slice(tokens, zero, a_length)
        b = ragged_slice(tokens, a_length, total)
        if mode == "nsp":
            is_random = (uniform(2) < 0.5) | (sentences < 2)
            # Another chunk of the batch (a rotation), from a random sentence on, whole
            # sentences until B reaches `max_tokens - len(A)` tokens (Google's target).
            shift = 1 + tf.cast(uniform(3)[0] * tf.cast(tf.maximum(batch - 1, 1),
                                                        tf.float32), tf.int32)
            partner = (tf.range(batch) + shift) % batch
            p_tokens = tf.gather(tokens, partner)
            p_bounds = tf.gather(boundaries, partner)
            p_sentences = tf.gather(sentences, partner)
            first = tf.cast(uniform(4) * tf.cast(p_sentences, tf.float32), tf.int32)
            p_starts = tf.concat([tf.zeros([batch, 1], tf.int32),
                                  p_bounds.to_tensor(0)], 1)
            start = tf.gather(p_starts, first, batch_dims=1)
            wanted = start + tf.maximum(max_tokens - tf.cast(a.row_lengths(), tf.int32), 1)
            reaching = tf.ragged.boolean_mask(p_bounds, p_bounds >= wanted[:, None])
            stop = tf.where(reaching.row_lengths() > 0,
                            tf.reduce_min(reaching, axis=1),
                            tf.gather(total, partner))
            random_b = ragged_slice(p_tokens, start, stop)
            b = _choose_rows(is_random, random_b, b)
            labels = tf.cast(is_random, tf.int32)
        else:
            swap = (uniform(2) < 0.5) & (b.row_lengths() > 0)
            a, b = _choose_rows(swap, b, a), _choose_rows(swap, a, b)
            labels = tf.cast(swap, tf.int32)
        a, b = _truncate_pair(a, b, max_tokens, seeds[5])
        segments = [a, b]

    # The pair already fits (truncated above), so this only adds [CLS]/[SEP] and pads.
    packed = pack_inputs(segments, seq_length, special[names.CLS_TOKEN],
                         special[names.SEP_TOKEN], special[names.PAD_TOKEN])
    features, mlm_labels = masker(packed, seeds[6])
    mlm_labels[names.NEXT_SENTENCE_LABELS] = labels[:, None]
    return features, mlm_labels


def _choose_rows(condition, when_true, when_false):
    """Row i of `when_true` where `condition[i]`, else of `when_false` (ragged)."""
    both = tf.concat([when_true, when_false], axis=0)
    batch = tf.shape(condition)[0]
    index = tf.where(condition, tf.range(batch), tf.range(batch) + batch)
    return tf.gather(both, index)


def _truncate_pair(a, b, max_tokens, seed):
    """Google's `truncate_seq_pair`: while too long, drop a token of the longer
    segment (B on ties), from its front or back at random."""
    la, lb = tf.cast(a.row_lengths(), tf.int32), tf.cast(b.row_lengths(), tf.int32)
    keep_a, keep_b = pair_keep_lengths(la, lb, max_tokens)
    seed_a, seed_b = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    out = []
    for segment, length, keep, s in ((a, la, keep_a, seed_a), (b, lb, keep_b, seed_b)):
        dropped = length - keep
        front = tf.cast(tf.random.stateless_binomial(
            tf.shape(dropped), s, tf.cast(dropped, tf.float32), 0.5), tf.int32)
        out.append(ragged_slice(segment, front, front + keep))
    return out
