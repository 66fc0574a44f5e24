"""The service layer: framework-free functions the CLI and the daemons call."""
