"""The event table: its schema (`schema`) and the masking of secrets in it (`redact`)."""
