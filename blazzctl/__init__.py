"""blazz: keeps many WhatsApp Web accounts of many workspaces connected."""

__version__ = "0.1.0"
