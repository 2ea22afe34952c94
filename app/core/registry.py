"""Extension points: an ordered list of callables that other domains add to.

A lower domain owns the point and calls it; ``app.hooks`` registers what the higher domains
add, once, in order. Adding the same callable twice keeps one (building several apps in one
process installs each hook once).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, ParamSpec

P = ParamSpec("P")


class Hooks(Generic[P]):
    def __init__(self) -> None:
        self._hooks: list[Callable[P, object]] = []

    def register(self, hook: Callable[P, object]) -> None:
        if hook not in self._hooks:
            self._hooks.append(hook)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> None:
        """Run every hook in registration order; a hook refuses by raising."""
        for hook in self._hooks:
            hook(*args, **kwargs)

    def __iter__(self) -> Iterator[Callable[P, object]]:
        return iter(self._hooks)
