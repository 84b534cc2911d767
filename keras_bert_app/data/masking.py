"""Dynamic masked-LM masking of dense batches, in the TF graph (RoBERTa's dynamic
masking: called inside `tf.data` after `repeat`, every epoch gets new masks)."""

import dataclasses

import tensorflow as tf

from keras_bert_app import names


@dataclasses.dataclass(frozen=True)
class MaskingSettings:
    """What Google's `create_pretraining_data` calls the masking flags.

    Args:
        max_predictions_per_seq: P, the most masked positions per sequence (and the
            width of the `masked_lm_*` tensors).
        masked_lm_prob: share of the tokens (specials included, as in Google's code)
            chosen for prediction, at least 1 and at most P per sequence.
        do_whole_word_mask: choose whole words: a `##` piece is chosen with the
            piece it continues.
        mask_token_rate, random_token_rate: of the chosen tokens, 80% become
            `[MASK]`, 10% a random vocabulary entry, the rest stay unchanged.
    """

    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    do_whole_word_mask: bool = False
    mask_token_rate: float = 0.8
    random_token_rate: float = 0.1

    def __post_init__(self):
        if self.max_predictions_per_seq < 1:
            raise ValueError(f"max_predictions_per_seq={self.max_predictions_per_seq} "
                             "must be positive.")
        if not 0 < self.masked_lm_prob < 1:
            raise ValueError(f"masked_lm_prob={self.masked_lm_prob} must be in (0, 1).")
        if self.mask_token_rate + self.random_token_rate > 1:
            raise ValueError("mask_token_rate + random_token_rate must be at most 1.")


class DynamicMasker:
    """Chooses and replaces masked-LM targets in packed batches.

    Args:
        settings: a `MaskingSettings`.
        vocab: the vocabulary as a list of tokens (id = index).

    Example:
    >>> masker = DynamicMasker(MaskingSettings(), tokenizer.vocab)
    >>> features, labels = masker(packed, seed=tf.constant([1, 2], tf.int64))
    """

    def __init__(self, settings, vocab):
        self.settings = settings
        self.vocab_size = len(vocab)
        index = {token: i for i, token in enumerate(vocab)}
        missing = [t for t in (names.CLS_TOKEN, names.SEP_TOKEN, names.MASK_TOKEN,
                               names.PAD_TOKEN) if t not in index]
        if missing:
            raise ValueError(f"The vocabulary lacks {missing}, needed for masking.")
        self.mask_id = index[names.MASK_TOKEN]
        self.unselectable_ids = tf.constant(
            sorted({index[names.CLS_TOKEN], index[names.SEP_TOKEN], index[names.PAD_TOKEN]}),
            tf.int32)
        self.is_suffix = tf.constant([t.startswith("##") for t in vocab])

    def __call__(self, packed, seed):
        """Masks a batch.

        Args:
            packed: dict with int32 `input_word_ids`, `input_mask`, `input_type_ids`
                `[batch, seq]` (unmasked ids).
            seed: int `[2]`, the stateless seed of this batch.

        Returns:
            `(features, labels)` as `BertPretrainer.fit` takes them (without
            `next_sentence_labels`): features gain `masked_lm_positions [batch, P]`
            and their ids are masked; labels hold `masked_lm_ids` and
            `masked_lm_weights` `[batch, P]`.
        """
        s = self.settings
        packed = {k: tf.cast(v, tf.int32) for k, v in packed.items()}
        ids = packed[names.INPUT_WORD_IDS]  # [batch, seq]
        real = packed[names.INPUT_MASK] > 0
        seq = tf.shape(ids)[1]
        choose_seed, replace_seed, token_seed = tf.unstack(
            tf.random.experimental.stateless_split(seed, 3))

        candidate = real & ~tf.reduce_any(ids[:, :, None] == self.unselectable_ids, -1)
        starts = candidate
        if s.do_whole_word_mask:
            # A piece starts a word unless it is `##…` right after another candidate.
            previous = tf.pad(candidate[:, :-1], [[0, 0], [1, 0]])
            starts = candidate & ~(tf.gather(self.is_suffix, ids) & previous)
        word = tf.cumsum(tf.cast(starts, tf.int32), axis=1) - 1  # [batch, seq]
        word = tf.where(candidate, word, seq)  # non-candidates: word `seq`, never chosen
        # Pieces per word: [batch, seq + 1] (the last column collects non-candidates).
        word_length = _per_word(tf.ones_like(word), word, seq, tf.math.unsorted_segment_sum)

        # Words in a random order; Google's greedy pass takes each word whose pieces
        # still fit in the budget and skips the others.
        score = tf.random.stateless_uniform(tf.shape(ids), choose_seed)
        score = tf.where(starts, score, 2.0)
        order = tf.argsort(score, axis=1)  # word starts first, in random order
        ordered_word = tf.gather(word, order, batch_dims=1)
        ordered_length = tf.gather(word_length, ordered_word, batch_dims=1)
        ordered_length = tf.where(tf.gather(starts, order, batch_dims=1), ordered_length, 0)
        budget = tf.round(tf.reduce_sum(tf.cast(real, tf.float32), 1) * s.masked_lm_prob)
        budget = tf.clip_by_value(tf.cast(budget, tf.int32), 1, s.max_predictions_per_seq)
        if s.do_whole_word_mask:
            def take_if_fits(state, length):  # over word ranks; [batch] per step
                used, _ = state
                fits = (length > 0) & (used + length <= budget)
                return used + tf.where(fits, length, 0), fits

            _, taken = tf.scan(take_if_fits, tf.transpose(ordered_length),
                               initializer=(tf.zeros_like(budget),
                                            tf.zeros_like(budget, tf.bool)))
            taken = tf.transpose(taken)  # [batch, seq]
        else:  # every word is one piece: the first `budget` words
            taken = (tf.cumsum(ordered_length, axis=1) <= budget[:, None]) & \
                (ordered_length > 0)
        # Chosen words back in word order: [batch, seq + 1].
        chosen_word = _per_word(tf.cast(taken, tf.int32), ordered_word, seq,
                                tf.math.unsorted_segment_max) > 0
        chosen = tf.gather(chosen_word, word, batch_dims=1) & candidate  # [batch, seq]

        # 80% [MASK], 10% a random token (any vocabulary entry, as Google does), 10% kept.
        u = tf.random.stateless_uniform(tf.shape(ids), replace_seed)
        random_ids = tf.random.stateless_uniform(tf.shape(ids), token_seed, 0,
                                                 self.vocab_size, dtype=tf.int32)
        replaced = tf.where(u < s.mask_token_rate, self.mask_id,
                            tf.where(u < s.mask_token_rate + s.random_token_rate,
                                     random_ids, ids))
        masked_ids = tf.where(chosen, replaced, ids)

        positions = tf.ragged.boolean_mask(tf.broadcast_to(tf.range(seq), tf.shape(ids)),
                                           chosen)  # ascending, as Google sorts them
        width = s.max_predictions_per_seq
        weights = tf.ones_like(positions, tf.float32).to_tensor(0.0, shape=[None, width])
        positions = positions.to_tensor(0, shape=[None, width])
        targets = tf.gather(ids, positions, batch_dims=1) * tf.cast(weights > 0, tf.int32)

        features = dict(packed)
        features[names.INPUT_WORD_IDS] = masked_ids
        features[names.MASKED_LM_POSITIONS] = positions
        labels = {names.MASKED_LM_IDS: targets, names.MASKED_LM_WEIGHTS: weights}
        return features, labels


def _per_word(values, word, seq, reduce):
    """Reduces `values [batch, seq]` by word index (`0..seq`, `seq` = no word) into
    `[batch, seq + 1]`."""
    batch = tf.shape(word)[0]
    segment = word + tf.range(batch)[:, None] * (seq + 1)
    out = reduce(values, segment, num_segments=batch * (seq + 1))
    return tf.reshape(out, [batch, seq + 1])
