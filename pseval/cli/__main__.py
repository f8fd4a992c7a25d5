"""``python -m pseval.cli``: the same command line as ``python -m pseval`` and the ``pseval`` script."""

from pseval.cli import main

if __name__ == "__main__":
    main()
