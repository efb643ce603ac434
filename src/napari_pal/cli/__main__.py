"""``python -m napari_pal.cli``."""

import sys

from napari_pal.cli import main

sys.exit(main())
