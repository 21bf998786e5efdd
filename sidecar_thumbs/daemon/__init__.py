"""The daemon: watching, settling, intake of changes, roots that come and go, the loop."""
