"""One module per `mama` subcommand (see mama_core/cli.py for the contract)."""
