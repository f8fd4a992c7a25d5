"""``python -m pseval``: the same command-line interface as the ``pseval`` console script."""

from pseval.cli import main

if __name__ == "__main__":
    main()
