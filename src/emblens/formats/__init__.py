"""Formats: one module per input format (its patterns, a short parse, its attributes), and the
registry that lists them in the order that breaks ties (`registry`)."""
