"""What every stage shares: the settings types, atomic files, paths, one-line errors, the curves format."""
