"""The command line: options, progress and log output; every command calls the library."""
