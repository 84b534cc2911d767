"""Every block of README.md is accounted for: each ```python and ```bash block has a
`<!-- readme-example: ID -->` marker and is run by a tests/readme test, run by the
test its marker names, or listed in `NOT_RUN` with the reason. Cheap (no TensorFlow):
it reads the README and the tables of tests/readme/readme_blocks.py."""

import os
import re
import sys

import pytest

from tests.readme import readme_blocks
from tests.readme.readme_blocks import NOT_RUN, REPO, RUNNABLE, SPECS, read_blocks

TEST_LANGUAGES = {"chain": RUNNABLE, "shell": ("bash",), "python": ("python",)}


def runnable_blocks():
    return [b for b in read_blocks() if b.language in RUNNABLE]


def test_fenced_blocks_are_python_bash_or_printed_output():
    # Another language (sh, console, ...) would slip past the runner unseen.
    odd = [(b.line, b.language) for b in read_blocks() if b.language not in RUNNABLE + ("",)]
    assert not odd, f"README.md lines {odd}: use ```python or ```bash (or ``` for output)"


def test_every_code_block_has_a_unique_marker():
    blocks = runnable_blocks()
    unmarked = [b.line for b in blocks if b.id is None]
    assert not unmarked, (f"README.md: the blocks at lines {unmarked} need a "
                          "<!-- readme-example: ID --> line right above them")
    ids = [b.id for b in blocks]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_every_code_block_is_run_or_excused_exactly_once():
    for b in runnable_blocks():
        ways = [b.id in SPECS, b.id in NOT_RUN, b.runner is not None]
        assert sum(ways) == 1, (
            f"README block {b.id!r} (line {b.line}) must be exactly one of: in SPECS "
            f"(run by tests/readme), in NOT_RUN (with the reason), or marked "
            f"'(tests/FILE.py runs this block)'; it is {ways}")
    for reason in NOT_RUN.values():
        assert len(reason) > 10


def test_the_tables_name_only_blocks_the_readme_has():
    ids = {b.id for b in runnable_blocks()}
    assert not set(SPECS) - ids, f"SPECS for blocks README.md lacks: {set(SPECS) - ids}"
    assert not set(NOT_RUN) - ids, f"NOT_RUN names blocks README.md lacks: {set(NOT_RUN) - ids}"


def test_a_block_run_elsewhere_is_in_the_test_its_marker_names():
    for b in runnable_blocks():
        if b.runner is None:
            continue
        path = os.path.join(REPO, b.runner)
        assert os.path.isfile(path), f"README block {b.id!r}: {b.runner} does not exist"
        with open(path, encoding="utf-8") as f:
            assert f"readme-example: {b.id}" in f.read(), (
                f"README block {b.id!r} says {b.runner} runs it, but that file does "
                "not look for it")


def test_every_spec_fits_its_block():
    blocks = {b.id: b for b in runnable_blocks()}
    order = [b.id for b in runnable_blocks()]
    for block_id, spec in SPECS.items():
        found = blocks[block_id]
        assert found.language in TEST_LANGUAGES[spec.test], (block_id, spec.test)
        readme_blocks.substitute(found.code, spec.subs, block_id)  # every text is there
        assert spec.expect, f"{block_id}: say what the block must print"
        for need in spec.needs:
            assert need in SPECS and order.index(need) < order.index(block_id), (
                f"{block_id} needs {need!r}, which must be a run block above it")
        assert set(spec.requires) <= set(readme_blocks.REQUIREMENTS), spec.requires


def test_the_blocks_share_one_working_folder():
    # Later blocks read what earlier ones wrote: every /tmp path is under /tmp/kba,
    # which the tests replace with their own folder.
    for b in runnable_blocks():
        stray = [p for p in re.findall(r"/tmp/[\w./*-]*", b.code)
                 if not (p == readme_blocks.WORK or p.startswith(readme_blocks.WORK + "/"))]
        assert not stray, f"README block {b.id!r} uses {stray} outside /tmp/kba"


def test_the_shell_shards_hold_every_shell_block_once_with_the_shell_blocks_it_needs():
    shards = readme_blocks.SHELL_SHARDS
    listed = [i for shard in shards for i in shard]
    assert sorted(listed) == sorted(readme_blocks.ids_for("shell"))
    for shard in shards:
        for block_id in shard:
            shell_needs = [n for n in SPECS[block_id].needs if SPECS[n].test == "shell"]
            assert set(shell_needs) <= set(shard), (block_id, shell_needs)
    # Bazel's count is the table's; each shard runs its own blocks, in README order.
    build = open(os.path.join(REPO, "BUILD"), encoding="utf-8").read()
    assert re.search(r'"tests/readme/shell_blocks_test\.py": %d,' % len(shards), build)
    env = {"TEST_TOTAL_SHARDS": str(len(shards))}
    got = [readme_blocks.shell_ids_of_this_shard(dict(env, TEST_SHARD_INDEX=str(i)))
           for i in range(len(shards))]
    assert [sorted(g) for g in got] == [sorted(s) for s in shards]
    assert readme_blocks.shell_ids_of_this_shard({}) == readme_blocks.ids_for("shell")
    with pytest.raises(ValueError, match="TEST_TOTAL_SHARDS=2"):
        readme_blocks.shell_ids_of_this_shard({"TEST_TOTAL_SHARDS": "2",
                                               "TEST_SHARD_INDEX": "0"})


def test_a_substitution_that_is_not_found_fails():
    with pytest.raises(AssertionError, match="no longer contains '--num_train_steps=9'"):
        readme_blocks.substitute("--num_train_steps=300", [("--num_train_steps=9", "")],
                                 "pretrain")


def test_markers_and_fences_are_read_as_written():
    text = ("<!-- readme-example: one -->\n```bash\necho 1\n```\n\n```\noutput\n```\n"
            "<!-- readme-example: two (tests/x_test.py runs this block) -->\n"
            "```python\nprint(2)\n```\n\n```python\nprint(3)\n```\n")
    blocks = read_blocks(text)
    assert [(b.id, b.language, b.code, b.runner) for b in blocks] == [
        ("one", "bash", "echo 1\n", None), (None, "", "output\n", None),
        ("two", "python", "print(2)\n", "tests/x_test.py"), (None, "python", "print(3)\n", None)]
    assert [b.line for b in blocks] == [2, 6, 10, 14]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
