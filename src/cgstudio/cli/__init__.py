"""The ``cgstudio`` command line: one group, lazily imported subcommands."""
