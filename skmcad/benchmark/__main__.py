"""Entry point of ``python -m skmcad.benchmark``."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
