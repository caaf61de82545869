"""The streaming engine: a member's lines read in chunks, kept or counted, within bounds."""
