"""Regex infrastructure shared by reading and the rules: which engine takes a pattern (`linear`),
the literals a pattern cannot match without (`literals`), and bounded memos of pure answers (`memo`)."""
