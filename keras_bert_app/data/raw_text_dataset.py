"""`raw_text_pretraining_dataset`: pre-training batches straight from text files, in
the TF graph — segment pairs (NSP or SOP) and masking drawn anew every epoch."""

import numbers

import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.data.masking import DynamicMasker, MaskingSettings
from keras_bert_app.data.pretraining_dataset import match_files
from keras_bert_app.tf_data_options import finish
from keras_bert_app.text.packing import pack_inputs, pair_keep_lengths, ragged_slice
from keras_bert_app.text.tokenizer import BertTokenizer


def raw_text_pretraining_dataset(file_pattern, vocab_file, batch_size, do_lower_case=True,
                                 max_seq_length=128, max_predictions_per_seq=20,
                                 masked_lm_prob=0.15, short_seq_prob=0.1,
                                 sentence_prediction="nsp", do_whole_word_mask=False,
                                 is_training=True, seed=None, shuffle_buffer_size=2048,
                                 skip_batches=0):
    """Batches `(features, labels)` for `BertPretrainer.fit`, made from raw text.

    Input is Google's format: one sentence per line, a blank line between documents.
    Each file is read whole and tokenized in the graph. Documents are cut into
    chunks of whole sentences up to a target length (`max_seq_length - 3`, or with
    probability `short_seq_prob` a random shorter one), as Google's
    `create_pretraining_data` does. Every chunk carries the id of its document
    (file, document in the file). Each chunk becomes one sequence:

    - `nsp`: A = the chunk's first sentences (a random number), B = the rest
      (label 0) or, half the time and always for a one-sentence chunk, text of
      another document (label 1): whole sentences of the chunk of a random batch
      member whose document id differs, from a random sentence on until B reaches
      the chunk's target length minus A's. A batch with no other document never
      labels a B random: a chunk of two or more sentences keeps its actual next
      sentences, a one-sentence chunk is split at a random token (B = the rest of
      the sentence, empty for a one-token chunk), both label 0.
    - `sop`: A and B as above from one chunk (a one-sentence chunk split at a random
      token), swapped half the time (label 1).
    - `none`: the chunk as one segment (masked LM only; labels are all 0).

    Pairs are trimmed to fit like Google's `truncate_seq_pair` (from the longer,
    front or back at random), then masked by `DynamicMasker`. Everything random is
    drawn after `repeat`, so every epoch sees new pairs and new masks; with `seed`
    the stream is reproducible (it does not depend on how many iterators are made).
    `skip_batches=N` starts the stream at its batch N (to resume a run): the
    batches after it are those of the unskipped stream, and the skipped ones are
    neither packed nor masked (they are still read, tokenized and chunked).

    Differences from Google's offline algorithm (`instances.py` follows it):
    - The random B comes from a chunk of another document in the same batch, not
      from any document of the corpus: a document is drawn in proportion to its
      chunks in the batch, and B cannot run past the end of that chunk (Google's
      runs on to the end of the document). To keep B as long as Google's, its first
      sentence is drawn among those that leave enough of the chunk for the target
      (the chunk's first sentence when none does).
    - The sentences of a chunk that a random B leaves unused are not put back for
      the next sequence (Google starts the next chunk with them).
    - A batch without another document gives label 0 as described above, where
      Google's draw from the corpus would find one (and in a corpus of one document
      takes A's own as "random" B).
    - Every chunk draws its own target length; Google draws one per document.
    - A new file starts a new document (Google's reader carries one over a file end).
    - For SOP a one-sentence chunk is split at a random token, as `instances.py`
      does (ALBERT's script pairs it with random text).
    """
    if sentence_prediction not in names.SENTENCE_PREDICTION_MODES:
        raise ValueError(f"sentence_prediction={sentence_prediction!r}; expected one of "
                         f"{list(names.SENTENCE_PREDICTION_MODES)}.")
    if not _is_count(skip_batches):
        raise ValueError(f"skip_batches={skip_batches!r} must be a non-negative integer.")
    if batch_size < 2 and sentence_prediction == "nsp":
        raise ValueError("NSP draws random segments from the rest of the batch: "
                         "batch_size must be at least 2.")
    if skip_batches and seed is None:
        raise ValueError("skip_batches needs a seed: without one the stream differs "
                         "every time, so skipping would not resume it.")
    files = match_files(file_pattern)
    tokenizer = BertTokenizer(vocab_file, lower_case=do_lower_case)
    special = tokenizer.special_ids
    masker = DynamicMasker(MaskingSettings(max_predictions_per_seq, masked_lm_prob,
                                           do_whole_word_mask), tokenizer.vocab)
    pair = sentence_prediction != "none"
    max_tokens = max_seq_length - (3 if pair else 2)
    if max_tokens < 2:
        raise ValueError(f"max_seq_length={max_seq_length} is too short.")

    def documents(file_index, path):  # one file → (document, its id)
        lines = tf.strings.strip(tf.strings.split(tf.io.read_file(path), "\n"))
        grouped = _group_documents(tokenizer, lines)  # [documents, sentences, pieces]
        # Unique across files (and the same in every epoch): file * 2^32 + document.
        # (Zipped, not sliced as one tuple: slicing ragged and dense together trips
        # TensorFlow's type inference, a logged warning.)
        ids = file_index * (1 << 32) + tf.range(grouped.nrows())
        return tf.data.Dataset.zip((tf.data.Dataset.from_tensor_slices(grouped),
                                    tf.data.Dataset.from_tensor_slices(ids))).filter(
            lambda doc, _: tf.size(doc.flat_values) > 0)

    def chunks(document, document_id, seed):  # [sentences, pieces] → whole-sentence chunks
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
        num_chunks = tokens.nrows(out_type=tf.int32)
        return tf.data.Dataset.zip((
            tf.data.Dataset.from_tensor_slices((tokens, boundaries)),
            tf.data.Dataset.from_tensor_slices((tf.fill([num_chunks], document_id),
                                                targets[:num_chunks]))))  # chunk c's target

    def sequences(chunk, seed):  # a batch of chunks → packed and masked
        (tokens, boundaries), (document_ids, targets) = chunk
        return _make_batch(tokens, boundaries, document_ids, targets, seed,
                           sentence_prediction, max_tokens, max_seq_length, special, masker)

    dataset = tf.data.Dataset.from_tensor_slices((tf.range(len(files), dtype=tf.int64),
                                                  files))
    if is_training:  # repeat first: everything below is drawn anew each epoch
        dataset = dataset.repeat().shuffle(len(files), seed=seed,
                                           reshuffle_each_iteration=False)
    dataset = dataset.interleave(documents, cycle_length=min(len(files), 4),
                                 num_parallel_calls=tf.data.AUTOTUNE,
                                 deterministic=True)
    dataset = tf.data.Dataset.zip((dataset, _seeds(seed, 1)))
    dataset = dataset.flat_map(lambda document, seed: chunks(*document, seed))
    if is_training:
        dataset = dataset.shuffle(shuffle_buffer_size, seed=seed,
                                  reshuffle_each_iteration=False)
    dataset = dataset.ragged_batch(batch_size, drop_remainder=is_training)
    dataset = tf.data.Dataset.zip((dataset, _seeds(seed, 2)))
    # Batch i keeps seed i whether or not batches before it are skipped; skipping here
    # spares the pack/mask work of the skipped batches.
    dataset = dataset.skip(int(skip_batches))
    dataset = dataset.map(sequences, num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=True)
    return finish(dataset.prefetch(tf.data.AUTOTUNE))


def _is_count(value):
    """A non-negative int (NumPy's too, as a step counter gives it), not a bool."""
    return (isinstance(value, numbers.Integral) and not isinstance(value, bool)
            and value >= 0)


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


def _make_batch(tokens, boundaries, document_ids, targets, seed, mode, max_tokens,
                seq_length, special, masker):
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
        if mode == "nsp":
            partner, has_other = _other_document_rows(document_ids, uniform(3))
            # Never a "random" B from the same document: without another document in
            # the batch, the actual continuation (label 0).
            is_random = has_other & ((uniform(2) < 0.5) | (sentences < 2))
            split_one_sentence = tf.logical_not(has_other)
        else:
            split_one_sentence = tf.ones([batch], tf.bool)
        # A ends after a random number (1 .. sentences-1) of sentences; a one-sentence
        # chunk is split at a random token (1 .. total-1) or, with a random B, is all A.
        cut = 1 + tf.cast(uniform(0) * tf.cast(tf.maximum(sentences - 1, 1), tf.float32),
                          tf.int32)
        token_cut = 1 + tf.cast(uniform(1) * tf.cast(tf.maximum(total - 1, 1), tf.float32),
                                tf.int32)
        a_length = tf.where(sentences > 1, tf.gather(boundaries, cut - 1, batch_dims=1),
                            tf.where(split_one_sentence, tf.minimum(token_cut, total),
                                     total))
        a = ragged_slice(tokens, tf.zeros_like(total), a_length)
        b = ragged_slice(tokens, a_length, total)
        if mode == "nsp":
            # Google's target for a random B: the chunk's target less A's length.
            wanted = tf.maximum(targets - tf.cast(a.row_lengths(), tf.int32), 1)
            random_b = _random_segment(tokens, boundaries, partner, wanted, uniform(4))
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


def _other_document_rows(document_ids, uniform):
    """For each row, a row of another document, uniformly at random among the batch's
    rows whose `document_ids` differ; and whether there is one (`[batch]` each).

    O(batch log batch): the rows sorted by document, row i's own document is one
    block of that order, and the `k`-th other row is the `k`-th position outside it.
    """
    batch = tf.shape(document_ids)[0]
    _, group = tf.unique(document_ids)  # [batch]: the row's document, numbered 0..
    counts = tf.math.bincount(group, dtype=tf.int32)  # rows per document
    order = tf.argsort(group, stable=True)  # row indices, grouped by document
    same = tf.gather(counts, group)  # rows of the row's own document (itself included)
    block_start = tf.gather(tf.cumsum(counts, exclusive=True), group)
    others = batch - same
    k = tf.minimum(tf.cast(uniform * tf.cast(others, tf.float32), tf.int32),
                   tf.maximum(others - 1, 0))
    position = tf.where(k < block_start, k, k + same)
    partner = tf.gather(order, tf.minimum(position, batch - 1))
    return partner, others > 0


def _random_segment(tokens, boundaries, partner, wanted, uniform):
    """Row i: whole sentences of chunk `partner[i]` from a random sentence on, until
    `wanted[i]` tokens are reached or the chunk ends (Google's random B).

    The first sentence is drawn among those leaving at least `wanted` tokens (the
    chunk's first when none does), so that B is not cut short by the chunk's end more
    often than Google's is by a document's end.
    """
    p_tokens = tf.gather(tokens, partner)  # [batch, pieces]
    p_bounds = tf.gather(boundaries, partner)  # [batch, sentences]: sentence ends
    p_total = tf.cast(p_tokens.row_lengths(), tf.int32)
    starts = tf.concat([tf.zeros_like(p_bounds[:, :1]), p_bounds[:, :-1]], 1)  # ragged
    # Starts increase, so the sentences leaving enough are a prefix: count them.
    leaving_enough = tf.reduce_sum(tf.cast(p_total[:, None] - starts >= wanted[:, None],
                                           tf.int32), axis=1)
    first = tf.cast(uniform * tf.cast(tf.maximum(leaving_enough, 1), tf.float32), tf.int32)
    start = tf.gather(starts, first, batch_dims=1)
    reaching = tf.ragged.boolean_mask(p_bounds, p_bounds >= (start + wanted)[:, None])
    stop = tf.where(reaching.row_lengths() > 0, tf.reduce_min(reaching, axis=1), p_total)
    return ragged_slice(p_tokens, start, stop)


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
