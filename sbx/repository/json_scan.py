"""A JSON reader over a byte stream for documents too large to hold twice (manifests).

The caller walks the outer objects and arrays (:meth:`JsonScanner.members`,
:meth:`JsonScanner.items`) and reads each value below them whole with the standard decoder
(:meth:`JsonScanner.value`). Only a window of the text is held: about one block, or one value
when a value is larger. Anything that is not JSON raises ``ValueError`` naming the character.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, Final

BLOCK: Final = 1 << 20
_DECODER: Final = json.JSONDecoder()
_SPACE: Final = frozenset(" \t\n\r")


class JsonScanner:
    def __init__(self, stream: BinaryIO, block: int = BLOCK) -> None:
        self._stream, self._block = stream, block
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._eof = False
        self._dropped = 0  # characters before the window, for error positions
        self.text, self.pos = "", 0

    def end(self) -> None:
        """Check that nothing but white space follows."""
        if self.peek():
            raise ValueError(f"extra data at character {self._at()}")

    def value(self) -> Any:
        """The JSON value starting here, read whole."""
        self._space()
        while True:
            try:
                found, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as exc:
                if self._more():  # cut off by the window's end, or really broken
                    continue
                raise ValueError(f"{exc.msg} at character {self._dropped + exc.pos}") from None
            if end == len(self.text) and self._more():
                continue  # a number or literal may go on in the next block
            self.pos = end
            return found

    def members(self) -> Iterator[str]:
        """The keys of the object starting here; read each key's value before the next."""
        self._expect("{")
        if self.peek() == "}":
            self.pos += 1
            return
        while True:
            if self.peek() != '"':
                raise ValueError(f"expected a key in quotes at character {self._at()}")
            key = self.value()
            self._expect(":")
            yield key
            if self._next_or_end("}"):
                return

    def items(self, read: Callable[[], Any]) -> Iterator[Any]:
        """The items of the array starting here, each read by ``read``."""
        self._expect("[")
        if self.peek() == "]":
            self.pos += 1
            return
        while True:
            yield read()
            if self._next_or_end("]"):
                return

    def peek(self) -> str:
        """The next character that is not white space; "" at the end."""
        self._space()
        return self.text[self.pos : self.pos + 1]

    def _next_or_end(self, close: str) -> bool:
        char = self.peek()
        if char not in (",", close) or not char:
            raise ValueError(f"expected ',' or '{close}' at character {self._at()}")
        self.pos += 1
        return char == close

    def _expect(self, char: str) -> None:
        if self.peek() != char:
            raise ValueError(f"expected '{char}' at character {self._at()}")
        self.pos += 1

    def _space(self) -> None:
        while True:
            text, pos = self.text, self.pos
            while pos < len(text) and text[pos] in _SPACE:
                pos += 1
            self.pos = pos
            if pos < len(text) or not self._more():
                return

    def _more(self) -> bool:
        """Drop what was read and append the next block; False at the end of the stream."""
        while not self._eof:
            block = self._stream.read(self._block)
            self._eof = not block
            new = self._utf8.decode(block, final=self._eof)
            if new:
                self._dropped += self.pos
                self.text, self.pos = self.text[self.pos :] + new, 0
                return True
        return False

    def _at(self) -> int:
        return self._dropped + self.pos
