"""Long-running processes of blazz (no Typer here)."""
