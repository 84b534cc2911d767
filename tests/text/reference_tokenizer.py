"""A plain-Python port of Google's BERT `tokenization.py`, the parity reference.

It follows the published algorithm step by step (BasicTokenizer then greedy
longest-match-first WordPiece), using Python's `unicodedata` the same way, and is
checked against Google's own test cases in `reference_tokenizer_test.py`. It is slow and
runs only in tests. What it computes per character, per whitespace-separated token and
per word is a pure function of that string, so each is computed once and remembered
(the parity test tokenizes 191,000 texts twice: ~21 s a casing without it); the
results are the same.
"""

import functools
import unicodedata

MAX_INPUT_CHARS_PER_WORD = 200  # google-research/bert tokenization.py (current)


def load_vocab(path):
    vocab = {}
    with open(path, encoding="utf-8") as f:
        for index, line in enumerate(f):
            vocab[line.strip()] = index
    return vocab


@functools.lru_cache(maxsize=None)
def is_whitespace(char):
    if char in (" ", "\t", "\n", "\r"):
        return True
    return unicodedata.category(char) == "Zs"


@functools.lru_cache(maxsize=None)
def is_control(char):
    if char in ("\t", "\n", "\r"):
        return False
    return unicodedata.category(char) in ("Cc", "Cf")


@functools.lru_cache(maxsize=None)
def is_punctuation(char):
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def is_chinese_char(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF
            or 0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2B73F
            or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


class BasicTokenizer:
    def __init__(self, do_lower_case=True):
        self.do_lower_case = do_lower_case
        # Whitespace-separated token -> its words (a pure function of the token).
        self._split_token = functools.lru_cache(maxsize=None)(self._split_token)

    def tokenize(self, text):
        text = self._clean_text(text)
        text = self._tokenize_chinese_chars(text)
        split_tokens = []
        for token in text.strip().split():
            split_tokens.extend(self._split_token(token))
        return " ".join(split_tokens).strip().split()

    def _split_token(self, token):
        if self.do_lower_case:
            token = self._strip_accents(token.lower())
        return self._split_on_punctuation(token)

    @staticmethod
    def _strip_accents(text):
        return "".join(c for c in unicodedata.normalize("NFD", text)
                       if unicodedata.category(c) != "Mn")

    @staticmethod
    def _split_on_punctuation(text):
        words, start_new = [], True
        for char in text:
            if is_punctuation(char):
                words.append([char])
                start_new = True
            else:
                if start_new:
                    words.append([])
                start_new = False
                words[-1].append(char)
        return ["".join(w) for w in words]

    @staticmethod
    def _tokenize_chinese_chars(text):
        return "".join(map(_spaced_if_chinese, text))

    @staticmethod
    def _clean_text(text):
        return "".join(map(_cleaned, text))


@functools.lru_cache(maxsize=None)
def _spaced_if_chinese(char):
    return f" {char} " if is_chinese_char(ord(char)) else char


@functools.lru_cache(maxsize=None)
def _cleaned(char):
    """The character as `_clean_text` keeps it: dropped, a space, or itself."""
    cp = ord(char)
    if cp == 0 or cp == 0xFFFD or is_control(char):
        return ""
    return " " if is_whitespace(char) else char


class WordpieceTokenizer:
    def __init__(self, vocab, unk_token="[UNK]", max_input_chars_per_word=MAX_INPUT_CHARS_PER_WORD):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word

    def tokenize(self, text):
        output = []
        for token in text.strip().split():
            chars = list(token)
            if len(chars) > self.max_input_chars_per_word:
                output.append(self.unk_token)
                continue
            pieces, start, bad = [], 0, False
            while start < len(chars):
                end, match = len(chars), None
                while start < end:
                    piece = "".join(chars[start:end])
                    if start > 0:
                        piece = "##" + piece
                    if piece in self.vocab:
                        match = piece
                        break
                    end -= 1
                if match is None:
                    bad = True
                    break
                pieces.append(match)
                start = end
            output.extend([self.unk_token] if bad else pieces)
        return output


class FullTokenizer:
    """BasicTokenizer then WordPiece; `tokenize(text)` returns word-piece strings."""

    def __init__(self, vocab_file, do_lower_case=True):
        self.vocab = load_vocab(vocab_file)
        self.basic = BasicTokenizer(do_lower_case)
        self.wordpiece = WordpieceTokenizer(self.vocab)
        # Word -> its word pieces (a pure function of the word); callers get copies.
        self._word_pieces = functools.lru_cache(maxsize=None)(self.wordpiece.tokenize)

    def tokenize(self, text):
        if isinstance(text, bytes):
            text = text.decode("utf-8", "ignore")
        return [p for word in self.basic.tokenize(text) for p in self._word_pieces(word)]

    def tokenize_words(self, text):
        """Word pieces grouped by word, the shape of our in-graph tokenizer's output."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", "ignore")
        return [list(self._word_pieces(word)) for word in self.basic.tokenize(text)]

    def convert_tokens_to_ids(self, tokens):
        return [self.vocab[t] for t in tokens]
