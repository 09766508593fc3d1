"""Sinks: where validated records go (files, the DuckDB store, and streaming/server sinks)."""
