"""The gallery: one entry per model, drawn as one static HTML page."""
