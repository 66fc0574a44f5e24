"""WhatsApp Web through Playwright: the built-in ``webjs`` provider."""

from blazzctl.providers.webjs.provider import WebjsProvider

__all__ = ["WebjsProvider"]
