"""Recommenders that ship inside the core package (registered by entry point all the same)."""
