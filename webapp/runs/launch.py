"""The “New run” screen (filled in next)."""
