"""@mentions in a private note: the logins a note names, in the order written."""

from __future__ import annotations

import re

# A login as accounts spell them (letters, digits, dot, dash, underscore), after an @ that does
# not follow a word character (so an e-mail address mentions nobody).
MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9][A-Za-z0-9._-]{0,63})")


def mentioned(text: str) -> list[str]:
    """The logins after an @, each once, lower-cased, trailing dots dropped ("@ayu." is ayu)."""
    found: list[str] = []
    for match in MENTION.finditer(text):
        login = match.group(1).rstrip(".").lower()
        if login and login not in found:
            found.append(login)
    return found
