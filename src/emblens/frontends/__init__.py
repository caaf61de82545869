"""Front ends over the library: the command line (`cli`), the live mitmproxy addon (`live`),
`collect` and `probe`. None of them imports another; each calls `emblens.diagnose`."""
