"""blazz-api: the HTTP API, a FastAPI application over the same services as the CLI.

Nothing in ``blazzctl.cli`` imports this package (FastAPI and Pydantic would cost every
command's start-up); only `blazzctl api` does, when it runs.
"""
