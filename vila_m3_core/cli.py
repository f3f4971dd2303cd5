"""The ``vila-m3`` command line (python-fire). Each verb is a thin call into the module that owns the logic."""

from __future__ import annotations

import logging
import sys

from vila_m3_core.errors import VilaM3Error


class CLI:
    """vila-m3: run, chat with, evaluate and package the VILA-M3 medical vision-language model."""

    def generate(self, *args, **kwargs):
        """Answer a prompt about one or more images with VILA-M3 (see vila_m3_core.model.cli.generate)."""
        from vila_m3_core.model.cli import generate

        return generate(*args, **kwargs)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``vila-m3`` console script; user errors are printed without a traceback."""
    import fire

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        fire.Fire(CLI, command=argv, name="vila-m3")
    except VilaM3Error as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
