"""The C runtime compiled into every artifact, and the Python loader."""
