"""napari-pal: Pick-and-Learn label-quality review for napari.

The engine (data, method, training, scoring, CLI) imports neither Qt nor napari;
the napari layer lives in the ``_widget``/``_reader``/``_writer``/``_sample_data`` modules.
"""

__version__ = "0.1.0"
