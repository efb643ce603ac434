"""Everything that imports napari, Qt or magicgui: reader, writer, sample data, widget."""
