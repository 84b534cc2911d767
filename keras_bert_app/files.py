"""Finding the files of a model directory, for every stage that reads one (the text
side included, which must not depend on the models to do so)."""

import os


def model_dir_files(model_dir, *file_names):
    """Paths of `file_names` in `model_dir`; an error naming the first one missing."""
    paths = [os.path.join(os.fspath(model_dir), name) for name in file_names]
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{model_dir} is not a pre-trained model directory: "
                                    f"{os.path.basename(path)} is missing.")
    return paths
