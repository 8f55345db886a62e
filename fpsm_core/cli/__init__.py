"""The ``fpsm`` command line: one program, one module per subcommand."""
