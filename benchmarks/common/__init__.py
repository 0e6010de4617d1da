"""Foundation: atomic files, statistics, table formatting. Imports nothing else of the suite."""
