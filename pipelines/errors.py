"""How every pipeline reports bad input: one line naming the problem, exit status 2,
instead of a traceback. (Bugs — any other exception — still show their traceback.)"""

import sys

from absl import app

# What the library raises for bad flags, files or data.
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError)


def run(main):
    """`absl.app.run(main)`, with the library's input errors as one-line messages."""

    def guarded(argv):
        try:
            return main(argv)
        except USER_ERRORS as error:
            name = sys.modules["__main__"].__spec__.name if sys.modules[
                "__main__"].__spec__ else sys.argv[0]
            print(f"{name}: error: {error}", file=sys.stderr)
            sys.exit(2)

    app.run(guarded)
