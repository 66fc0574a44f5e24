"""The session daemon: claims accounts, drives their WhatsApp Web sessions, reports status."""
