"""Storage URLs as they may be shown: in error messages, log lines and command output.

A storage URL often carries the store's password (``redis://user:s3cret@host/0``,
``rediss+cluster://:pw@host``, ``redis+sentinel://:pw@h1,h2/service``), and an error message
or a log line is read by more people than the configuration it came from. ``redact`` keeps what
helps to find the mistake (scheme, user name, hosts, path, options) and replaces the secrets
with ``***``.
"""

from __future__ import annotations

import re

MASK = "***"

#: Query options whose value is a secret (redis-py reads ``password`` from the query too).
_SECRET_OPTION = re.compile(r"(?i)([?&](?:[a-z_]*password)=)[^&#]*")


def _userinfo_end(rest: str) -> int:
    """Where the user info of ``rest`` (the URL after ``scheme://``) ends: the index of its
    last ``@``, or -1 when it has none.

    Hosts, ports and paths never hold an ``@``, so the last one before the query ends the user
    info, whatever an unencoded password holds (``/``, ``#``, more ``@``). Without one there,
    an ``@`` further on is still the end of user info unless an ``=`` precedes it (then it is a
    query value such as ``client_name=a@b``): a password holding an unencoded ``?`` stays hidden.
    """
    head = rest.split("?", 1)[0]
    at = head.rfind("@")
    if at >= 0:
        return at
    at = rest.rfind("@")
    return at if at >= 0 and "=" not in rest[:at] else -1


def redact(url: str) -> str:
    """``url`` with its password (and any ``password=`` option) replaced by ``***``.

    ``redis://user:s3cret@host:6379/0`` -> ``redis://user:***@host:6379/0``. User info with no
    ``:`` is hidden whole (``redis://s3cret@host`` is a password written in the user's place as
    often as it is a user name). A URL with nothing secret comes back unchanged.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _mask_options(url)
    end = _userinfo_end(rest)
    if end > 0:
        user, colon, _ = rest[:end].partition(":")
        shown = f"{user}:{MASK}" if colon else MASK
        rest = f"{shown}{rest[end:]}"
    return f"{scheme}://{_mask_options(rest)}"


def _mask_options(text: str) -> str:
    return _SECRET_OPTION.sub(lambda m: m.group(1) + MASK, text)
