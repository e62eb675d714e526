"""The graph IR, op vocabulary, driver, command line and errors."""
