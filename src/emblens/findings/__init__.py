"""Findings beyond the rules' own: how many requests each concerns (`requests`), how confidence is
made up (`confidence`), evidence lines that say the same thing (`grouping`), the error lines no
rule explains (`unexplained`) and where to start when no rule fired (`lead`)."""
