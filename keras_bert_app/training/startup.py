"""Where a run's time to its first training step goes, logged once per run.

A user waits from launch to the first step: interpreter and imports, reading and
tokenising the data, building the model and loading its weights, then tracing (and
with XLA compiling) the step. The runners mark the end of each phase; the first
step's end prints one line:

    Start-up: first step 31.2 s after launch: imports 7.9 s, data 3.1 s, model 4.0 s,
    first step 16.2 s (tracing, XLA off)

Phases are measured on the wall clock from the previous mark. The first run of a
process starts at the process's start (read from /proc on Linux, else this module's
import): "imports" runs to the run's `begin()` (in a pipeline: the interpreter, the
frameworks, the library and the flags), or, where the program said when its imports
ended (`mark_imports_done()`, as the demo does before its first step), to that mark,
and "before the run" from there to `begin()`: the program's own work first (the
demo's vocabulary and data steps), which is not an import. A second run in the same
process (tests, notebooks) reports its own phases from its own `begin()`, without
either.
"""

import os
import time

import keras

# First import of this module: the fallback for a process start /proc cannot give.
_MODULE_IMPORTED = time.time()
_first_run = True
_log = None
_imports_done = None  # mark_imports_done()'s time
# A shorter time between the marked end of the imports and the run counts as imports.
BEFORE_THE_RUN_SHOWN = 0.1


def process_start_time():
    """Wall-clock time (s since the epoch) this process started."""
    try:
        with open("/proc/self/stat") as f:
            # Field 22 (starttime, clock ticks after boot) follows the parenthesised
            # command name, which may itself hold spaces.
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = int(fields[19])
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return _MODULE_IMPORTED


class StartupLog:
    """The phases of one run's start-up: `[(name, seconds)]` in order."""

    def __init__(self, started, imports=None, now=None):
        self.started = started  # when the run (or, with imports, the process) began
        self.phases = [] if imports is None else [("imports", imports)]
        self._last = time.time() if now is None else now  # the phases add up

    def mark(self, name):
        """Ends the phase `name` now (seconds since the previous mark)."""
        now = time.time()
        self.phases.append((name, now - self._last))
        self._last = now

    def describe(self, detail=""):
        total = self._last - self.started
        parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.phases)
        since = "launch" if self.phases and self.phases[0][0] == "imports" else \
            "the run's start"
        return (f"Start-up: first step {total:.1f} s after {since}: {parts}"
                + (f" ({detail})" if detail else ""))


def mark_imports_done():
    """Says that this program's imports are over (the first call counts): a first run
    that begins later reports the time in between as "before the run", not as
    imports. For programs that do their own work before a run (the demo's first
    steps, a user's script)."""
    global _imports_done
    if _imports_done is None:
        _imports_done = time.time()


def begin():
    """Starts a run's start-up log; the first run of a process counts its imports."""
    global _first_run, _log
    now = time.time()
    if _first_run:
        started = min(process_start_time(), now)
        imported = now if _imports_done is None else min(max(started, _imports_done), now)
        if now - imported < BEFORE_THE_RUN_SHOWN:
            imported = now
        _log = StartupLog(started, imports=imported - started, now=now)
        if now > imported:
            _log.phases.append(("before the run", now - imported))
        _first_run = False
    else:
        _log = StartupLog(now, now=now)
    return _log


def mark(name):
    """Ends the phase `name` of the current run (a no-op outside a run)."""
    if _log is not None:
        _log.mark(name)


class FirstStepLog(keras.callbacks.Callback):
    """Prints the start-up line when the first training call (one step, or
    `steps_per_execution` of them) returns; `detail` says how the step compiled."""

    def __init__(self, detail="", enabled=True):
        super().__init__()
        self.detail, self.enabled = detail, enabled
        self.done = False

    def on_train_batch_end(self, batch, logs=None):
        if self.done:
            return
        self.done = True
        if _log is None or not self.enabled:
            return
        _log.mark("first step")
        print(_log.describe(self.detail), flush=True)
