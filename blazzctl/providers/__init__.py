"""Providers drive WhatsApp sessions. The daemon talks to them only through ``base.Provider``."""
