"""Host-only outputs for people: evaluation reports, charts, heatmap overlays and galleries."""
