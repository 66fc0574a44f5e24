"""Input rules shared by every entry point: names and phone numbers."""

from __future__ import annotations

import re
import unicodedata

from blazzctl.errors import InvalidInput

NAME_MAX = 100
_PHONE_CHARS = re.compile(r"^(\+|00)?[0-9(][0-9 ().\-/]*\Z")


def name(value: str, *, what: str = "name") -> str:
    """A name of 1-100 characters without control characters, not only blanks, returned exactly as given."""
    if not value:
        raise InvalidInput(f"{what} must not be empty", hint=f"Give a {what} of 1-{NAME_MAX} characters.")
    if all(_blank(ch) for ch in value):  # "   " reads as no name at all in every list
        raise InvalidInput(f"{what} must not be only whitespace",
                           hint=f"Give a {what} with at least one visible character.")
    if len(value) > NAME_MAX:
        raise InvalidInput(f"{what} is {len(value)} characters long; the limit is {NAME_MAX}",
                           hint=f"Give a shorter {what}.")
    for ch in value:
        category = unicodedata.category(ch)
        if category == "Cc":
            raise InvalidInput(f"{what} contains the control character U+{ord(ch):04X}",
                               hint=f"Give a {what} without tabs, newlines or other control characters.")
        if category == "Cs":  # bytes that were not UTF-8 (argv decodes them to lone surrogates)
            raise InvalidInput(f"{what} is not valid UTF-8 text",
                               hint="Check the terminal's encoding (a UTF-8 locale), and type the name again.")
    return value


def _blank(ch: str) -> bool:
    """Whitespace (spaces of every width, non-breaking ones too) or an invisible format character."""
    return ch.isspace() or unicodedata.category(ch) in ("Zs", "Zl", "Zp", "Cf")


def reference(value: str, *, what: str = "reference") -> str:
    """A REF or WS as typed: any text, but text (bytes that were not UTF-8 can match nothing)."""
    if any(unicodedata.category(ch) == "Cs" for ch in value):
        raise InvalidInput(f"{what} {value!r} is not valid UTF-8 text",
                           hint="Check the terminal's encoding (a UTF-8 locale), or use the id.")
    return value


def phone_e164(value: str) -> str:
    """Parse a phone number in any common form and return it in E.164 (+6281234567890)."""
    import phonenumbers

    text = value.strip()
    # Only digits and the usual separators: phonenumbers alone would accept "++62...", letters
    # ("+1 800 FLOWERS") and extensions ("x12"), and silently store a different number.
    if not _PHONE_CHARS.match(text):
        raise InvalidInput(f"{value!r} is not a valid phone number",
                           hint="Use digits, spaces, dashes, dots or parentheses and the country code, "
                                "e.g. +62 812-3456-7890.")
    candidate = text if text.startswith("+") or text.startswith("00") else f"+{text}"
    if candidate.startswith("00"):
        candidate = "+" + candidate[2:]
    try:
        parsed = phonenumbers.parse(candidate, None)
    except phonenumbers.NumberParseException:
        parsed = None
    # Valid, or at least of a possible length for its country: WhatsApp has numbers the
    # metadata does not know as valid (new ranges, test numbers such as +4915550001), and
    # daemons store whatever number links, so every number blazz stores is accepted back.
    if parsed is None or not (phonenumbers.is_valid_number(parsed) or phonenumbers.is_possible_number_with_reason(
            parsed) == phonenumbers.ValidationResult.IS_POSSIBLE):
        raise InvalidInput(f"{value!r} is not a valid phone number",
                           hint="Give it in international form with the country code, e.g. +62 812-3456-7890.")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
