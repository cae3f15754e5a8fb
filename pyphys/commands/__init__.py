"""One module per subcommand; each defines ``register(subparsers, name, help_text)``."""
