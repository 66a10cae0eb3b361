"""``python -m factory_tui`` does what the ``factory`` command does."""

from factory_tui.cli import main

if __name__ == "__main__":
    main(prog_name="factory")
