"""Aggregation into Parquet tables, Markdown tables and figures (from the tables and artifacts only)."""
