"""How every pipeline reports bad input: one line naming the problem, exit status 2,
instead of a traceback; the same for a disk that fills up while a run writes. (Bugs —
any other exception — still show their traceback.)"""

import atexit
import errno
import inspect
import multiprocessing
import os
import sys
import threading

from absl import app

# What the library raises for bad flags, files or data.
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError)


# A full disk or a file-size limit while writing: errno from Python (h5py, open),
# or TensorFlow's status message (SaveV2, file writers).
_NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
_NO_SPACE_MESSAGES = ("No space left on device", "File too large", "Disk quota exceeded")


def out_of_space(error):
    """Whether `error` says the disk (or the process's file-size limit) is full."""
    if isinstance(error, OSError) and error.errno in _NO_SPACE_ERRNOS:
        return True
    return any(message in str(error) for message in _NO_SPACE_MESSAGES) and \
        type(error).__module__.startswith(("tensorflow", "h5py", "builtins"))


def _exit(message):
    name = sys.modules["__main__"].__spec__.name if sys.modules[
        "__main__"].__spec__ else sys.argv[0]
    print(f"{name}: error: {message}", file=sys.stderr)
    sys.exit(2)


def run(main, flags_parser=None):
    """`absl.app.run(main)`, with the library's input errors as one-line messages.
    `flags_parser`: as absl's (the Beam pipeline's passes other frameworks' flags
    through)."""

    def guarded(argv):
        from pipelines.frameworks import import_frameworks

        import_frameworks()  # before any pipeline imports the library
        try:
            return main(argv)
        except USER_ERRORS as error:
            _exit(f"{error}")
        except Exception as error:  # noqa: BLE001 — only a full disk is reported
            if not out_of_space(error):
                raise
            # One line (h5py's message holds newlines), naming the file being written.
            _exit("out of disk space: " + " ".join(str(error).split()))

    try:
        if flags_parser is None:
            app.run(guarded)
        else:
            app.run(guarded, flags_parser=flags_parser)
    except SystemExit as done:
        if _is_the_program(main):
            _leave(done.code)  # the process is this pipeline (python -m pipelines.…)
        raise  # run from another program (runpy, pdb, a notebook): it goes on


def _is_the_program(main):
    """Whether the process is this pipeline: started by `python -m pipelines.NAME`
    (the outermost frame is runpy's `_run_module_as_main`) or `python FILE`, `python -c`
    (the outermost frame is `main`'s module), not by another program that runs it
    (`runpy.run_module`/`run_path` from a script, `pdb -m`, a notebook)."""
    frame = inspect.currentframe()
    while frame.f_back is not None:
        frame = frame.f_back
    if frame.f_globals is main.__globals__:
        return True
    main_module = sys.modules.get("__main__")
    # runpy's private entry point for -m, stable since Python 2.7; pinned by
    # tests/pipelines/errors_test.py. Read from sys.modules (-m loaded it): the
    # package imports no code-running module (tests/reliability/security_test.py).
    entry = getattr(sys.modules.get("runpy"), "_run_module_as_main", None)
    return (entry is not None and frame.f_code is entry.__code__ and
            main_module is not None and main.__globals__ is vars(main_module))


def _leave(code):
    """Ends the process as the interpreter would (exit handlers run, output flushed),
    but without tearing the interpreter down: freeing TensorFlow's objects one by one
    took 0.8 s after the last line of a fine-tuning run (of 21 s), the OS frees them
    at once. Where peers may still talk to this process (a `TF_CONFIG` cluster), or
    child processes or other non-daemon threads run (Python's exit would wait for
    them, after waking idle `concurrent.futures` workers), the normal exit is kept."""
    others = [t for t in threading.enumerate()
              if t is not threading.current_thread() and not t.daemon]
    if os.environ.get("TF_CONFIG") or multiprocessing.active_children() or others:
        return
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message"): printed, status 1, as Python does
        print(code, file=sys.stderr)
        status = 1
    # Private but stable since Python 2: what `Py_FinalizeEx` runs before teardown
    # (logging's flush, h5py's, multiprocessing's); pinned by
    # tests/pipelines/errors_test.py.
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
