"""Targets: what a target is and how to build for it, registered by name."""
