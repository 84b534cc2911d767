"""Finding and reading the files of a model directory, for every stage that reads one
(the text side included, which must not depend on the models to do so)."""

import contextlib
import json
import os


def user_cache_dir(*parts):
    """This package's folder in the user's cache, shared by all runs:
    `$XDG_CACHE_HOME` (else `~/.cache`) `/keras_bert_app/<parts>`."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                            ".cache")
    return os.path.join(base, "keras_bert_app", *parts)


def model_dir_files(model_dir, *file_names):
    """Paths of `file_names` in `model_dir`; an error naming the first one missing."""
    paths = [os.path.join(os.fspath(model_dir), name) for name in file_names]
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{model_dir} is not a pre-trained model directory: "
                                    f"{os.path.basename(path)} is missing.")
    return paths


def read_json_file(path):
    """The JSON value in `path`; invalid JSON is a `ValueError` naming file and line."""
    path = os.fspath(path)
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON (line {e.lineno}): {e.msg}") from None
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not UTF-8 JSON (byte {e.start}: a binary or "
                             "pickled file?)") from None


@contextlib.contextmanager
def removed_on_failure(path):
    """Removes the half-written `path` when the write fails (a full disk, an error):
    the space it holds is freed and no stray file is left; the error goes on."""
    try:
        yield path
    except BaseException:
        try:
            os.remove(path)
        except OSError:
            pass
        raise
