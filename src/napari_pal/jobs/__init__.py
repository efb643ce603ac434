"""Jobs the napari widget runs in its worker thread: generators of typed events (GUI-free)."""
