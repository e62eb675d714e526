"""Model importers: each turns a model format into Kiln graph IR."""
