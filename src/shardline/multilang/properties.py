"""A reader for Java ``.properties`` files, the format of the MultiLangDaemon's config.

Pure: text in, ``(key, value, line)`` entries out. The syntax is that of
``java.util.Properties.load``: ``key = value``, ``key: value`` or ``key value``;
lines whose first non-blank character is ``#`` or ``!`` are comments; a line ending in
an odd number of backslashes continues on the next line (whose leading blanks are
dropped); ``\\t \\n \\r \\f \\uXXXX`` are escapes and a backslash before any other
character stands for that character.
"""

from __future__ import annotations

from dataclasses import dataclass

from shardline.errors import ConfigError

__all__ = ["Property", "decode_file_bytes", "parse_properties"]

_BLANKS = " \t\f"
_SEPARATORS = "=:"
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


@dataclass(frozen=True)
class Property:
    """One ``key = value`` entry and the line it starts on (1-based)."""

    key: str
    value: str
    line: int


def decode_file_bytes(data: bytes) -> str:
    """UTF-8 when it decodes, else ISO-8859-1 (what ``Properties.load`` reads)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("iso-8859-1")


def parse_properties(text: str, source: str = "properties") -> list[Property]:
    """Every entry in file order (a repeated key appears twice; the last one wins)."""
    entries = []
    for number, logical in _logical_lines(text):
        key, value = _split_entry(logical)
        entries.append(
            Property(_unescape(key, source, number), _unescape(value, source, number), number)
        )
    return entries


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join continued lines; drop blank and comment lines. Raw (still escaped) text."""
    natural = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    result: list[tuple[int, str]] = []
    index = 0
    while index < len(natural):
        start = index
        line = natural[index].lstrip(_BLANKS)
        index += 1
        if not line or line[0] in "#!":
            continue
        parts = []
        while _continues(line) and index < len(natural):
            parts.append(line[:-1])
            line = natural[index].lstrip(_BLANKS)
            index += 1
        if _continues(line):
            line = line[:-1]
        parts.append(line)
        result.append((start + 1, "".join(parts)))
    return result


def _continues(line: str) -> bool:
    trailing = len(line) - len(line.rstrip("\\"))
    return trailing % 2 == 1


def _split_entry(line: str) -> tuple[str, str]:
    """Split at the first unescaped separator (``=``, ``:`` or a blank)."""
    index = 0
    while index < len(line):
        char = line[index]
        if char == "\\":
            index += 2
            continue
        if char in _SEPARATORS or char in _BLANKS:
            break
        index += 1
    key = line[:index]
    rest = line[index:].lstrip(_BLANKS)
    if rest[:1] and rest[0] in _SEPARATORS:
        rest = rest[1:].lstrip(_BLANKS)
    return key, rest


def _unescape(raw: str, source: str, line: int) -> str:
    out: list[str] = []
    index = 0
    while index < len(raw):
        char = raw[index]
        if char != "\\" or index + 1 >= len(raw):
            out.append(char)
            index += 1
            continue
        code = raw[index + 1]
        if code == "u":
            digits = raw[index + 2 : index + 6]
            if len(digits) != 4 or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise ConfigError(f"{source}:{line}: malformed \\uxxxx escape")
            out.append(chr(int(digits, 16)))
            index += 6
            continue
        out.append(_ESCAPES.get(code, code))
        index += 2
    return "".join(out)
