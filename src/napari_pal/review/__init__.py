"""Review state kept outside the GUI: viewer stacks, export, autosave recovery."""
