"""``python -m helpers.notebooks COMMAND ...``: ``execute``, ``clean`` and ``variants`` (``execution``),
``sync`` and ``check`` (``repository``)."""

import sys

from . import execution, repository

if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv and argv[0] in ("sync", "check"):
        sys.exit(repository.main(argv))
    sys.exit(execution.main(argv))
