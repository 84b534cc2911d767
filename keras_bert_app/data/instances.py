"""Pre-training instances from documents: Google's `create_pretraining_data` algorithm.

Pure Python over token ids, driven by one `random.Random`, so a seed reproduces the
data exactly. Follows google-research/bert step for step: segments accumulated to a
(sometimes short) target length, a random split into A and B, B replaced by a random
document's text half of the time, random front/back truncation, and 15% masking
(80% [MASK], 10% a random vocabulary token, 10% unchanged) over whole words or pieces.
One departure: a random B never comes from A's own document. Google's code takes it
from there after ten draws that all hit A's document, and always in a corpus of one
document; here the draw then picks another document, and a one-document corpus gets
the actual continuation (label 0; a one-sentence chunk split in two, as for SOP).
With two or more documents every draw is Google's (ten misses aside).
"""

import dataclasses


@dataclasses.dataclass
class Instance:
    tokens: list  # ids, [CLS] A [SEP] (B [SEP])
    segment_ids: list
    masked_lm_positions: list
    masked_lm_ids: list
    next_sentence_label: int  # 0: B is the actual next (or in order); 1: random/swapped


@dataclasses.dataclass(frozen=True)
class InstanceSettings:
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    do_whole_word_mask: bool = False
    sentence_prediction: str = "nsp"  # nsp | sop | none


class InstanceMaker:
    """Makes instances from tokenized documents (lists of sentences of ids).

    Args:
        settings: `InstanceSettings`.
        cls_id, sep_id, mask_id: ids of `[CLS]`, `[SEP]`, `[MASK]`.
        is_suffix: per id, whether the token is a `##` continuation.
        vocab_size: random replacements draw from all ids, as Google's code does.
        rng: a `random.Random`.

    Attributes:
        truncated: instances made so far whose text was cut to fit the length
            (a count for reports; drawing nothing from `rng`).
    """

    def __init__(self, settings, cls_id, sep_id, mask_id, is_suffix, vocab_size, rng):
        self.settings = settings
        self.cls_id, self.sep_id, self.mask_id = cls_id, sep_id, mask_id
        self.is_suffix = is_suffix
        self.vocab_size = vocab_size
        self.rng = rng
        self.truncated = 0

    def from_document(self, documents, document_index):
        if self.settings.sentence_prediction == "none":
            return self._single_segment(documents[document_index])
        return self._pairs(documents, document_index)

    # --------------------------------------------------------------- NSP and SOP

    def _target_length(self, max_num_tokens):
        if self.rng.random() < self.settings.short_seq_prob:
            return self.rng.randint(2, max_num_tokens)
        return max_num_tokens

    def _pairs(self, documents, document_index):
        rng, document = self.rng, documents[document_index]
        max_num_tokens = self.settings.max_seq_length - 3
        target_length = self._target_length(max_num_tokens)
        instances, chunk, length, i = [], [], 0, 0
        while i < len(document):
            chunk.append(document[i])
            length += len(document[i])
            if i == len(document) - 1 or length >= target_length:
                if chunk:
                    a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
                    tokens_a = [t for segment in chunk[:a_end] for t in segment]
                    tokens_b, label = [], 0
                    nsp = self.settings.sentence_prediction == "nsp"
                    # Google draws "random" text from the same document when it is the
                    # only one (labelled random all the same); here a corpus of one
                    # document gets the actual continuation instead, as SOP does.
                    if nsp and len(documents) > 1 and (len(chunk) == 1
                                                       or rng.random() < 0.5):
                        label = 1
                        tokens_b = self._random_text(documents, document_index,
                                                     target_length - len(tokens_a))
                        i -= len(chunk) - a_end  # put the unused segments back
                    elif len(chunk) == 1:
                        # One sentence: split it, so B is still its continuation.
                        if len(tokens_a) < 2:
                            chunk, length, i = [], 0, i + 1
                            continue
                        cut = rng.randint(1, len(tokens_a) - 1)
                        tokens_a, tokens_b = tokens_a[:cut], tokens_a[cut:]
                    else:
                        tokens_b = [t for segment in chunk[a_end:] for t in segment]
                    if not nsp and rng.random() < 0.5:  # sop: swap half
                        tokens_a, tokens_b, label = tokens_b, tokens_a, 1
                    self._truncate_pair(tokens_a, tokens_b, max_num_tokens)
                    if tokens_a and tokens_b:
                        tokens = ([self.cls_id] + tokens_a + [self.sep_id] + tokens_b
                                  + [self.sep_id])
                        segments = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
                        instances.append(self._masked(tokens, segments, label))
                chunk, length = [], 0
            i += 1
        return instances

    def _random_text(self, documents, document_index, target_length):
        rng = self.rng
        for _ in range(10):  # Google's draw (kept: the same seed, the same records)
            random_index = rng.randint(0, len(documents) - 1)
            if random_index != document_index:
                break
        else:  # Google would use its own document after 10 misses: never the same one
            random_index = (document_index + rng.randint(1, len(documents) - 1)) % len(
                documents)
        document = documents[random_index]
        tokens = []
        for segment in document[rng.randint(0, len(document) - 1):]:
            tokens.extend(segment)
            if len(tokens) >= target_length:
                break
        return tokens

    def _truncate_pair(self, tokens_a, tokens_b, max_num_tokens):
        self.truncated += len(tokens_a) + len(tokens_b) > max_num_tokens
        while len(tokens_a) + len(tokens_b) > max_num_tokens:
            longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
            if self.rng.random() < 0.5:
                del longer[0]
            else:
                longer.pop()

    # ------------------------------------------------------------------ no NSP

    def _single_segment(self, document):
        """RoBERTa's DOC-SENTENCES: whole sentences packed up to the length."""
        max_num_tokens = self.settings.max_seq_length - 2
        target_length = self._target_length(max_num_tokens)
        instances, tokens = [], []
        for index, sentence in enumerate(document):
            tokens.extend(sentence)
            if len(tokens) >= target_length or index == len(document) - 1:
                self.truncated += len(tokens) > max_num_tokens
                tokens = tokens[:max_num_tokens]
                full = [self.cls_id] + tokens + [self.sep_id]
                instances.append(self._masked(full, [0] * len(full), 0))
                tokens = []
                target_length = self._target_length(max_num_tokens)
        return instances

    # ----------------------------------------------------------------- masking

    def _masked(self, tokens, segment_ids, label):
        rng, settings = self.rng, self.settings
        candidates = []
        for index, token in enumerate(tokens):
            if token in (self.cls_id, self.sep_id):
                continue
            if settings.do_whole_word_mask and candidates and self.is_suffix[token]:
                candidates[-1].append(index)
            else:
                candidates.append([index])
        rng.shuffle(candidates)
        to_predict = min(settings.max_predictions_per_seq,
                         max(1, int(round(len(tokens) * settings.masked_lm_prob))))
        output, predictions, covered = list(tokens), [], set()
        for index_set in candidates:
            if len(predictions) >= to_predict:
                break
            if len(predictions) + len(index_set) > to_predict:
                continue
            if any(i in covered for i in index_set):
                continue
            for index in index_set:
                covered.add(index)
                if rng.random() < 0.8:
                    replacement = self.mask_id
                elif rng.random() < 0.5:
                    replacement = tokens[index]
                else:
                    replacement = rng.randint(0, self.vocab_size - 1)
                output[index] = replacement
                predictions.append((index, tokens[index]))
        predictions.sort()
        return Instance(tokens=output, segment_ids=segment_ids,
                        masked_lm_positions=[p for p, _ in predictions],
                        masked_lm_ids=[t for _, t in predictions],
                        next_sentence_label=label)
