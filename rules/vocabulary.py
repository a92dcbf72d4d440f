"""The vocabulary of the condition language, as ``tagengine catalog facts`` lists it.

Built from ``rules/facts.py`` (FACTS, WINDOWS, FUNCTIONS) and nothing else: what the checker
accepts and what the listing shows cannot drift apart.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from rules.facts import FACTS, FUNCTIONS, NUMBER, WINDOWS, EventKind
from state.events import FollowupEvent, LoginEvent, OrderEvent, ProfileEvent

_EVENTS: dict[EventKind, str] = {
    OrderEvent: "orders",
    LoginEvent: "logins",
    FollowupEvent: "followups",
    ProfileEvent: "profile updates",
}

_MIDNIGHT = ("local midnight",)  # a calendar fact changes with the clock too


@dataclass(frozen=True, slots=True)
class Word:
    """One fact, window function or function, as written in a condition."""

    kind: str  # "fact", "window" or "function"
    written: str  # how it is written: "spend(D)", "logins(D, channel)", "age(t)", "birthday"
    type: str  # the type of its value (rules/facts.py)
    doc: str
    changed_by: tuple[str, ...]  # what changes its value: kinds of event, "local midnight"


def vocabulary() -> list[Word]:
    """Every fact, then every window function, then the other functions, in declaration order."""
    words = [
        Word("fact", name, fact.type, fact.doc, (*_events(fact.changed_by), *(_MIDNIGHT if fact.clock else ())))
        for name, fact in FACTS.items()
    ]
    for name, window in WINDOWS.items():
        written = f"{name}(D[, channel])" if window.by_channel else f"{name}(D)"
        words.append(Word("window", written, NUMBER, window.doc, (*_events(window.changed_by), "time")))
    words += [Word("function", f.signature, f.type, f.doc, ()) for f in FUNCTIONS.values()]
    return words


def to_text(words: list[Word]) -> str:
    """One line per word, aligned: how it is written, its type, what it means, what changes it."""
    width = max(len(word.written) for word in words)
    lines: list[str] = []
    for kind, title in (("fact", "Facts"), ("window", "Window functions (D: a duration up to 365d)"),
                        ("function", "Functions")):
        lines.append(f"{title}:")
        for word in (w for w in words if w.kind == kind):
            changed = f"  [changed by {', '.join(word.changed_by)}]" if word.changed_by else ""
            lines.append(f"  {word.written:<{width}}  {word.type:<8}  {word.doc}{changed}")
        lines.append("")
    return "\n".join(lines)


def to_json(words: list[Word]) -> list[dict[str, object]]:
    return [asdict(word) for word in words]


def _events(kinds: tuple[EventKind, ...]) -> tuple[str, ...]:
    return tuple(_EVENTS[kind] for kind in kinds)
