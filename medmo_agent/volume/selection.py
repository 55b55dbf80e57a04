"""Which slices a sweep reads: ``"all"``, a Python-style range ``"40:120"``, a step
``"::2"`` or both ``"40:120:2"``, or a comma list ``"10,12,40:50"``; capped per request."""

from __future__ import annotations

from ..errors import InputError, LimitExceededError

__all__ = ["select_slices"]

_FIX = "Use 'all', a range such as '40:120', a step such as '::2', or a list such as '10,12,40:50'."


def select_slices(spec: str | None, num_slices: int, *, limit: int, label: str) -> list[int]:
    """The slice indices ``spec`` names in a volume of ``num_slices``, sorted and distinct.

    Ranges follow Python's slice rules (end excluded, negative counts from the end).

    Args:
        spec: The selection (``None`` or ``"all"``: every slice).
        num_slices: Slices in the chosen plane.
        limit: Most slices one request may sweep (``Settings.max_volume_slices``).
        label: The volume, for messages.

    Raises:
        InputError: A malformed selection, or one naming no slice.
        LimitExceededError: More slices than ``limit``.
    """
    text = (spec or "all").strip().lower()
    chosen: set[int] = set()
    if text in ("all", ":", "::"):
        chosen.update(range(num_slices))
    else:
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            if ":" in part:
                chosen.update(range(num_slices)[_slice(part, spec)])
            else:
                index = _int(part, spec)
                if index < 0:
                    index += num_slices
                if not 0 <= index < num_slices:
                    raise InputError(
                        f"Slice {part} is out of range for {label}, which has {num_slices} "
                        "slice(s) in this plane.",
                        input="slices",
                        fix=f"Choose slices between 0 and {num_slices - 1}.",
                    )
                chosen.add(index)
    if not chosen:
        raise InputError(
            f"slices={spec!r} names no slice of {label}, which has {num_slices} slice(s).",
            input="slices",
            fix=_FIX,
        )
    if len(chosen) > limit:
        raise LimitExceededError(
            f"slices={spec!r} selects {len(chosen)} slices of {label}, over the limit of "
            f"{limit} slices per request (max_volume_slices).",
            input="slices",
            fix="Sweep a range or a step (e.g. '::2'), or raise MEDMO_MAX_VOLUME_SLICES.",
        )
    return sorted(chosen)


def _slice(part: str, spec: str | None) -> slice:
    bits = part.split(":")
    if len(bits) > 3:
        raise InputError(f"Cannot read slices={spec!r}.", input="slices", fix=_FIX)
    start, stop, step = ([_int(b, spec) if b.strip() else None for b in bits] + [None])[:3]
    if step is not None and step <= 0:
        raise InputError(
            f"The step in slices={spec!r} must be a positive whole number.",
            input="slices",
            fix=_FIX,
        )
    return slice(start, stop, step)


def _int(text: str, spec: str | None) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise InputError(f"Cannot read slices={spec!r}.", input="slices", fix=_FIX) from None
