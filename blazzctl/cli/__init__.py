"""The `blazzctl` command: thin Typer adapters over the service layer."""
