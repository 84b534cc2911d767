"""Pre-training input files are UTF-8 text through and through, or refused by line."""

import sys

import pytest

from keras_bert_app.data.input_format import TEXT, check_utf8_text, detect_format


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 5, 1 << 20])
@pytest.mark.parametrize("data,line,offset", [
    (b"to be\nor n\xf6t\n", 2, 10),  # latin-1
    ("to be\n中文".encode() + b"\n\xe4\xb8", 3, 13),  # a character cut at the end
    ("中".encode()[:2] + b"x\n", 1, 0),  # a character cut inside the text
])
def test_the_first_byte_that_is_not_utf8_is_named_by_line_and_offset(
        tmp_path, chunk_bytes, data, line, offset):
    path = tmp_path / "corpus.txt"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=rf"^{path}:{line}: not UTF-8 text \(byte 0x"
                                         rf"[0-9a-f]{{2}} at byte offset {offset}\)"):
        check_utf8_text(str(path), chunk_bytes=chunk_bytes)


@pytest.mark.parametrize("chunk_bytes", [1, 4, 1 << 20])
def test_a_nul_byte_is_utf16_or_binary(tmp_path, chunk_bytes):
    path = tmp_path / "corpus.txt"
    path.write_bytes("to be\nor not".encode("utf-16-le"))
    with pytest.raises(ValueError, match=rf"^{path}:1: not UTF-8 text \(a NUL byte at "
                                         r"byte offset 1: UTF-16 or binary\?\)"):
        check_utf8_text(str(path), chunk_bytes=chunk_bytes)


def test_utf8_text_split_anywhere_passes(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes("Zoë 東京 😀\n".encode() * 50)
    for chunk_bytes in range(1, 9):
        check_utf8_text(str(path), chunk_bytes=chunk_bytes)
    assert detect_format(str(path)) == TEXT


def test_a_bad_byte_after_the_format_probe_is_found(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes(b"The king is dead.\n" * 5000 + b"caf\xe9\n")  # past 64 KB
    with pytest.raises(ValueError, match=rf"{path}:5001: not UTF-8"):
        detect_format(str(path))


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
