"""The dock widget's panels, one per concern; each owns its widgets and actions and talks to
the others only through the shared :class:`~napari_pal._napari.state.ReviewState`."""
