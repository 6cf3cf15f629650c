"""Java ``.properties`` files, as Kafka's ``server.properties`` is written.

The format (java.util.Properties.load): one ``key=value``, ``key: value`` or ``key value`` per
logical line; ``#`` or ``!`` as the first non-blank character starts a comment line; a line
ending in an odd number of backslashes continues on the next one (whose leading blanks are
dropped); in keys and values ``\\t \\n \\r \\f \\uXXXX`` are escapes and a backslash before any
other character keeps that character (so ``\\=`` and ``\\:`` put separators into a key). A later
duplicate key wins. Unlike Java, the file is read as UTF-8 (Java reads ISO-8859-1), since that
is how such files are written today; bytes that are not UTF-8 are an error naming the line.
"""
from collections import namedtuple

from klog.errors import KlogError

Property = namedtuple("Property", "key value line")   # line: where the logical line starts
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
_BLANK = " \t\f"


class PropertiesSyntaxError(KlogError, ValueError):
    """A properties file that cannot be read: names the file and line."""


def load(path):
    """[Property] of the file at ``path``, in file order (duplicates kept; the caller decides)."""
    with open(path, "rb") as f:
        data = f.read()
    return parse(data, str(path))


def parse(data, name="<properties>"):
    if isinstance(data, bytes):
        lines = data.split(b"\n")
        text_lines = []
        for i, raw in enumerate(lines, 1):
            try:
                text_lines.append(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise PropertiesSyntaxError(
                    f"{name}:{i}: not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
                ) from None
    else:
        text_lines = data.split("\n")
    out = []
    i = 0
    while i < len(text_lines):
        start = i + 1
        line = text_lines[i].rstrip("\r").lstrip(_BLANK)
        i += 1
        if not line or line[0] in "#!":
            continue
        # Join continuation lines: an odd count of trailing backslashes escapes the newline.
        while _continues(line) and i < len(text_lines):
            line = line[:-1] + text_lines[i].rstrip("\r").lstrip(_BLANK)
            i += 1
        if _continues(line):     # a continuation at the end of the file: Java drops it
            line = line[:-1]
        key, value = _split(line)
        out.append(Property(_unescape(key, name, start), _unescape(value, name, start), start))
    return out


def _continues(line):
    n = len(line) - len(line.rstrip("\\"))
    return n % 2 == 1


def _split(line):
    """(raw key, raw value): the key ends at the first unescaped '=', ':' or blank."""
    j = 0
    while j < len(line):
        c = line[j]
        if c == "\\":
            j += 2
            continue
        if c in "=:" or c in _BLANK:
            break
        j += 1
    key = line[:j]
    rest = line[j:].lstrip(_BLANK)
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(_BLANK)
    return key, rest


def _unescape(text, name, line):
    if "\\" not in text:
        return text
    out = []
    j = 0
    while j < len(text):
        c = text[j]
        if c != "\\" or j + 1 == len(text):
            out.append(c)
            j += 1
            continue
        n = text[j + 1]
        if n == "u":
            digits = text[j + 2:j + 6]
            if len(digits) != 4 or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise PropertiesSyntaxError(f"{name}:{line}: malformed \\uxxxx escape {text[j:j + 6]!r}")
            out.append(chr(int(digits, 16)))
            j += 6
            continue
        out.append(_ESCAPES.get(n, n))
        j += 2
    return "".join(out)
