"""PySide6 reading workstation over mama_core."""
