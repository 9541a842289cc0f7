"""ORM models of the segmentation feature (filled in by that feature)."""
