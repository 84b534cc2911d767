"""Character tables of Google's BERT BasicTokenizer, computed from `unicodedata`.

Google's `tokenization.py` decides per character, with Python's `unicodedata`, what is
control (deleted), whitespace (a separator), punctuation (a word of its own) and how a
character lower-cases and loses its accents. Building our tables from the same module
makes the in-graph tokenizer agree with it character for character, rather than with
the (different) Unicode tables of ICU or RE2.
"""

import functools
import sys
import unicodedata

import numpy as np

# Google's `_is_chinese_char` ranges: CJK Unified Ideographs and their extensions and
# compatibility blocks. Hangul, kana and other Asian scripts are not in it.
CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF),
              (0x2A700, 0x2B73F), (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF),
              (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))
SPACE = 0x20
CAPITAL_SIGMA, FINAL_SIGMA = 0x3A3, 0x3C2
# Normalised forms are at most this many characters (checked when tables are built).
_MAX_EXPANSION = 7


def _is_control(char):
    return char not in "\t\n\r" and unicodedata.category(char) in ("Cc", "Cf")


def _is_whitespace(char):
    # Google's `_is_whitespace`, plus what Python's `str.split()` splits on after
    # cleaning (U+2028, U+2029), since Google splits words with `str.split()`.
    return char in " \t\n\r" or unicodedata.category(char) == "Zs" or char.isspace()


def is_separator(char):
    """A character that separates words: whitespace that cleaning does not delete
    (Google deletes controls first, so U+001C..U+001F and U+0085 join their
    neighbours although `str.split()` would split on them)."""
    return not (char in "\x00\ufffd" or _is_control(char)) and _is_whitespace(char)


def is_punctuation(cp):
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(chr(cp)).startswith("P")


@functools.lru_cache(maxsize=None)
def _assigned_codepoints():
    """Code points with a category other than unassigned, private use or surrogate.

    The others are neither control, whitespace nor punctuation and normalise to
    themselves; skipping them makes the tables ~10x faster to build.
    """
    return tuple(cp for cp in range(sys.maxunicode + 1)
                 if unicodedata.category(chr(cp)) not in ("Cn", "Co", "Cs"))


@functools.lru_cache(maxsize=None)
def normalization_table(lower_case):
    """Characters whose normalised form is not themselves.

    Returns `(keys, packed, values)`: `keys` int64 code points; `packed[i]` is
    `start * 8 + length` into the int32 `values`, the normalised code points. Control
    characters, U+0000 and U+FFFD normalise to nothing, whitespace to a space, and with
    `lower_case` every character to `strip_accents(NFD(lower(c)))`.
    """
    keys, packed, values = [], [], []
    for cp in _assigned_codepoints():
        char = chr(cp)
        category = unicodedata.category(char)
        if category == "Lo" and unicodedata.is_normalized("NFD", char):
            continue  # caseless letters that NFD leaves alone (not Hangul syllables)
        if is_separator(char):
            out = (SPACE,)
        elif cp in (0, 0xFFFD) or _is_control(char):
            out = ()
        elif lower_case:
            out = tuple(ord(c) for c in unicodedata.normalize("NFD", char.lower())
                        if unicodedata.category(c) != "Mn")
        else:
            continue
        if out == (cp,):
            continue
        if len(out) > _MAX_EXPANSION:
            raise AssertionError(f"U+{cp:04X} normalises to {len(out)} characters")
        keys.append(cp)
        packed.append(len(values) * 8 + len(out))
        values.extend(out)
    return (np.array(keys, np.int64), np.array(packed, np.int64),
            np.array(values or [0], np.int32))


@functools.lru_cache(maxsize=None)
def separator_codepoints():
    """Sorted int32 code points of `is_separator`: what the normalisation maps to a
    space (about 25 characters)."""
    return np.array([cp for cp in _assigned_codepoints() if is_separator(chr(cp))],
                    np.int32)


@functools.lru_cache(maxsize=None)
def punctuation_codepoints():
    """Sorted int32 code points that Google's `_is_punctuation` accepts."""
    return np.array([cp for cp in _assigned_codepoints() if is_punctuation(cp)],
                    np.int32)


@functools.lru_cache(maxsize=None)
def cased_codepoints():
    """Sorted int32 code points that are cased letters (for the final-sigma rule)."""
    return np.array([cp for cp in _assigned_codepoints()
                     if unicodedata.category(chr(cp)) in ("Lu", "Ll", "Lt")
                     or chr(cp).lower() != chr(cp) or chr(cp).upper() != chr(cp)],
                    np.int32)
