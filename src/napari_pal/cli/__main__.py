"""``python -m napari_pal.cli``."""

import sys

from napari_pal.cli import main

if __name__ == "__main__":
    sys.exit(main())
