"""One router per noun, under /v1."""
