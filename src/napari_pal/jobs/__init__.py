"""Jobs the widget runs in its worker, as generators of typed events (no Qt)."""
