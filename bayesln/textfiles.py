"""Reading the small text files a user hands to bayesln (specs, target files), bounded.

A spec or a targets file is a page of settings; a path that points at something else (a
device such as /dev/zero, a huge log, a binary) is refused with a message naming the file,
instead of being read until memory runs out or parsed into a deep recursion.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

#: the largest TOML file read (bytes)
MAX_TOML_BYTES = 256 * 1024


def read_toml(path: str | Path, *, error: type[Exception] = ValueError, what: str = "file",
              max_bytes: int = MAX_TOML_BYTES) -> dict:
    """The TOML document at ``path``; ``error(message)`` names the file and the problem
    (missing, unreadable, too large, not UTF-8, not TOML, nested too deeply)."""
    p = Path(path)
    if not p.is_file():
        raise error(f"{p}: {what} not found")
    try:
        with open(p, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"{p}: cannot be read: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise error(f"{p}: larger than {max_bytes // 1024} KiB, the most a {what} may hold")
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise error(f"{p}: not UTF-8 text (undecodable byte at offset {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{p}: not valid TOML: {exc}") from None
    except RecursionError:
        raise error(f"{p}: not valid TOML: arrays or tables nested too deeply") from None
