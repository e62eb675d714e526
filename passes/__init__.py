"""Graph passes: pure functions Graph -> Graph, ordered by the pass manager."""
