"""WordPiece vocabulary files: one token per line, id = line number."""

import hashlib
import os

from keras_bert_app import names


def load_vocab(path):
    """Reads `vocab.txt` into a list of tokens (index = id).

    A token is its line without the line end and surrounding whitespace (as Google's
    `load_vocab` strips it). An empty line or a token seen before is an error naming
    the file and line: either would silently shift or shadow ids.
    """
    path = os.fspath(path)
    tokens, seen = [], {}
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            token = line.strip()
            if not token:
                raise ValueError(f"{path}:{line_number}: empty vocabulary line; every "
                                 "line must hold one token (its id is the line number - 1).")
            if token in seen:
                raise ValueError(f"{path}:{line_number}: token {token!r} repeats line "
                                 f"{seen[token]}; vocabulary tokens must be unique.")
            seen[token] = line_number
            tokens.append(token)
    if not tokens:
        raise ValueError(f"{path}: the vocabulary file is empty.")
    return tokens


def special_token_ids(tokens, source="the vocabulary"):
    """Ids of `[PAD] [UNK] [CLS] [SEP] [MASK]`; a clear error if one is missing."""
    index = {token: i for i, token in enumerate(tokens)}
    missing = [t for t in names.SPECIAL_TOKENS if t not in index]
    if missing:
        raise ValueError(f"{source} lacks the special tokens {missing}; a BERT vocabulary "
                         f"needs all of {list(names.SPECIAL_TOKENS)}.")
    return {token: index[token] for token in names.SPECIAL_TOKENS}


def vocab_fingerprint(tokens):
    """SHA-256 of the token list, to check that two stages use the same vocabulary."""
    return hashlib.sha256("\n".join(tokens).encode("utf-8")).hexdigest()
