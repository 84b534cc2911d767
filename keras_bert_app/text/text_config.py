"""`TextConfig`: the text settings that every stage must share with the vocabulary."""

import dataclasses
import json
import os

from keras_bert_app.files import read_json_file
from keras_bert_app.text.tokenizer import MAX_CHARS_PER_WORD
from keras_bert_app.text.vocab import load_vocab, vocab_fingerprint


@dataclasses.dataclass(frozen=True)
class TextConfig:
    """How raw text becomes word pieces, written once beside `vocab.txt`.

    Args:
        do_lower_case: lower-case and strip accents (uncased models).
        max_chars_per_word: longer words become `[UNK]`.
        vocab_sha256: fingerprint of the vocabulary these settings belong to; a later
            stage that finds another vocabulary stops with an error instead of
            producing ids that mean other tokens.
    """

    do_lower_case: bool
    max_chars_per_word: int = MAX_CHARS_PER_WORD
    vocab_sha256: str = ""

    @classmethod
    def for_vocab(cls, vocab_file, do_lower_case, **kwargs):
        return cls(do_lower_case=bool(do_lower_case),
                   vocab_sha256=vocab_fingerprint(load_vocab(vocab_file)), **kwargs)

    def check_vocab(self, vocab_file):
        """Raises if `vocab_file` is not the vocabulary these settings were made for."""
        if self.vocab_sha256 and vocab_fingerprint(load_vocab(vocab_file)) != self.vocab_sha256:
            raise ValueError(f"{vocab_file} is not the vocabulary these text settings "
                             f"were written for (sha256 {self.vocab_sha256[:12]}…).")

    def to_json_file(self, path):
        with open(path, "w", encoding="utf-8") as f:
            json.dump(dataclasses.asdict(self), f, indent=2, sort_keys=True)
            f.write("\n")

    @classmethod
    def from_json_file(cls, path):
        path = os.fspath(path)
        values = read_json_file(path)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown or "do_lower_case" not in values:
            raise ValueError(f"{path}: expected the fields {sorted(known)} "
                             f"(do_lower_case required); unknown: {unknown}.")
        if not isinstance(values["do_lower_case"], bool):
            raise ValueError(f"{path}: do_lower_case={values['do_lower_case']!r} must be "
                             "true or false.")
        return cls(**values)
