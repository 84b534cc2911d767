"""Documents of a text shard: Google's layout or WikiExtractor's, decided from the
content; sentences of WikiExtractor paragraphs; bad lines named or counted."""

import io
import os
import sys

import pytest

from keras_bert_app.data.corpus_documents import (GOOGLE, WIKIEXTRACTOR, ShardReader,
                                                  split_sentences)
from tests.helpers import require_shared_data


def read(text, strict=False, path="shard.txt"):
    data = text.encode("utf-8") if isinstance(text, str) else text
    reader = ShardReader(path, strict=strict)
    return reader, list(reader.documents(io.BytesIO(data)))


@pytest.mark.parametrize("paragraph,sentences", [
    ("One. Two! Three?", ["One.", "Two!", "Three?"]),
    ("Dr. Smith met Mr. Jones. They left.", ["Dr. Smith met Mr. Jones.", "They left."]),
    ("J. R. R. Tolkien wrote it. It sold.", ["J. R. R. Tolkien wrote it.", "It sold."]),
    ('He said "Stop." Then he went.', ['He said "Stop."', "Then he went."]),
    ("The U.S. Army came. In 1939 it left.", ["The U.S. Army came.", "In 1939 it left."]),
    ("It costs 3.5 dollars, e.g. here. no capital follows.",
     ["It costs 3.5 dollars, e.g. here. no capital follows."]),
    ("No full stop at the end", ["No full stop at the end"]),
    ("Ünicode works. Élan too.", ["Ünicode works.", "Élan too."]),
])
def test_split_sentences(paragraph, sentences):
    assert split_sentences(paragraph) == sentences


def test_google_layout_is_a_sentence_per_line_and_blank_lines_between_documents():
    reader, documents = read("A one.\nA two.\n\n\n  \nB one.\n")
    assert reader.layout == GOOGLE
    assert documents == [["A one.", "A two."], ["B one."]]


def test_wikiextractor_layout_drops_titles_and_splits_paragraphs():
    text = ('<doc id="1" url="u" title="Cats">\nCats\n\nCats purr. They sleep.\n\n'
            'More text here.\n</doc>\n<doc id="2" url="u" title="Dogs">\nDogs\n'
            'Dogs bark.\n</doc>\n')
    reader, documents = read(text)
    assert reader.layout == WIKIEXTRACTOR
    assert documents == [["Cats purr.", "They sleep.", "More text here."], ["Dogs bark."]]
    assert reader.stray_lines == 0


def test_wikiextractor_text_outside_doc_is_counted_and_an_unclosed_doc_ends():
    text = ('<doc id="1" title="A">\nA\nFirst text.\n<doc id="2" title="B">\nB\n'
            'Second text.\n</doc>\nstray line\n')
    reader, documents = read(text)
    assert documents == [["First text."], ["Second text."]]
    assert reader.stray_lines == 1


def test_the_layout_comes_from_content_not_the_file_name():
    _, documents = read("<doc title=\"x\">\nx\nBody.\n</doc>\n", path="corpus.txt")
    assert documents == [["Body."]]
    _, documents = read("<b>not a doc</b>\n\nText.\n", path="wiki_00")
    assert documents == [["<b>not a doc</b>"], ["Text."]]


def test_bad_lines_are_counted_and_dropped_or_named_in_strict_mode():
    data = "Good one.\n".encode() + "caf\xe9 latin-1\n".encode("latin-1") + b"Good two.\n"
    reader, documents = read(data)
    assert documents == [["Good one.", "Good two."]]
    assert (reader.bad_lines, reader.lines) == (1, 3)
    assert reader.first_error.startswith("shard.txt:2: not UTF-8")
    with pytest.raises(ValueError, match=r"shard.txt:2: not UTF-8 .*byte 13"):
        read(data, strict=True)


def test_utf16_and_empty_shards():
    reader, documents = read("One.\nTwo.\n".encode("utf-16-le"))
    assert documents == [] and reader.bad_lines == reader.lines >= 2
    reader, documents = read(b"")
    assert documents == [] and reader.lines == 0 and reader.layout is None


def test_the_shared_wikipedia_shard():
    path = os.path.join(require_shared_data(), "wiki", "wiki_00.txt")
    reader = ShardReader(path, strict=True)
    with open(path, "rb") as f:
        documents = list(reader.documents(f))
    assert reader.layout == WIKIEXTRACTOR and len(documents) == 2
    assert documents[0][0].startswith("Anarchism is a political philosophy")
    assert all("<doc" not in s and s not in ("Anarchism", "Autism")
               for d in documents for s in d)
    with open(path, encoding="utf-8") as f:
        paragraphs = [l for l in f.read().splitlines()
                      if l.strip() and not l.startswith(("<doc", "</doc"))]
    # Paragraphs became sentences: about 4 per paragraph, never one.
    assert sum(map(len, documents)) > 2 * len(paragraphs)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
