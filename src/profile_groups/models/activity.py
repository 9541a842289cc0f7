"""ORM models of the activity feature (filled in by that feature)."""
