"""Lowerings from IR op families to the kernel IR, one module per family."""
