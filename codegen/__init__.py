"""Code generation: fused groups -> kernel IR -> C source, plus the module skeleton."""
