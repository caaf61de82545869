"""Ingest: paths in, members out: bundles and archives read as streams (never extracted), bytes
decoded (gzip, UTF-16) and each member's format told from its first bytes (`sniff`)."""
