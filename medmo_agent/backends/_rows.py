"""Turning one request's generated tokens into text, piece by piece, as they arrive.

A byte-level tokenizer can split one character over several tokens, so a token on its
own may decode to U+FFFD; text is held back until its bytes are complete. Text that may
be the start of a stop string is held back too, so the pieces handed to the caller
always concatenate to exactly the final text, stop strings cut off.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["TextAssembler"]

_REPLACEMENT = "\ufffd"


class TextAssembler:
    """Accumulates the tokens of one answer and emits its text incrementally.

    Decoding cost stays flat: once everything decoded so far has been emitted, the text
    is committed and only later tokens are decoded again.

    Args:
        decode: Token ids -> text (special tokens skipped).
        stop: Strings that end the answer; the answer is cut just before the first one.
        on_text: Called with each new piece of text.
    """

    def __init__(
        self,
        decode: Callable[[list[int]], str],
        stop: Sequence[str] | None = None,
        on_text: Callable[[str], None] | None = None,
    ):
        self._decode = decode
        self._stop = [s for s in (stop or []) if s]
        self._on_text = on_text
        self._tokens: list[int] = []
        self._window_start = 0  # tokens before this index are decoded into _committed
        self._committed = ""
        self._emitted = 0  # characters of the text handed to on_text
        self.text = ""
        self.stopped = False  # a stop string was found

    @property
    def num_tokens(self) -> int:
        """Tokens added so far."""
        return len(self._tokens)

    def add(self, token: int) -> bool:
        """Add one generated token; returns True once a stop string has appeared."""
        if self.stopped:
            return True
        self._tokens.append(int(token))
        text = self._committed + self._decode(self._tokens[self._window_start :])
        cut = self._find_stop(text)
        if cut is not None:
            self.text = text[:cut]
            self.stopped = True
            self._emit_up_to(cut)
            return True
        self.text = text
        safe = self._safe_length(text)
        self._emit_up_to(safe)
        if safe == len(text):
            self._committed = text
            self._window_start = len(self._tokens)
        return False

    def finish(self) -> str:
        """Emit whatever was held back and return the final text."""
        self._emit_up_to(len(self.text))
        return self.text

    def _find_stop(self, text: str) -> int | None:
        # A stop string cannot start inside text already emitted: its beginning was held back.
        found = [i for i in (text.find(s, self._emitted) for s in self._stop) if i >= 0]
        return min(found) if found else None

    def _safe_length(self, text: str) -> int:
        safe = len(text)
        while safe > self._emitted and text[safe - 1] == _REPLACEMENT:
            safe -= 1  # bytes of a character still arriving
        hold = 0
        for s in self._stop:
            for k in range(min(len(s) - 1, safe - self._emitted), hold, -1):
                if text.endswith(s[:k], 0, safe):
                    hold = k
                    break
        return safe - hold

    def _emit_up_to(self, end: int) -> None:
        if end > self._emitted:
            piece = self.text[self._emitted : end]
            self._emitted = end
            if self._on_text is not None:
                self._on_text(piece)
