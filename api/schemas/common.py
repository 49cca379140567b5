"""Shapes shared by every route: the one error format and pagination."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field, model_validator

T = TypeVar("T")

MAX_DEPTH = 32
"""Request bodies nest a few levels; deeper ones are refused (422) before anything recurses into them."""


def _walk(value: Any) -> Iterator[tuple[Any, int]]:
    """Every value, key and container in ``value`` with its depth, without recursion."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        yield item, depth
        if isinstance(item, dict):
            stack.extend((part, depth + 1) for pair in item.items() for part in pair)
        elif isinstance(item, list | tuple):
            stack.extend((v, depth + 1) for v in item)


def _nul(value: Any) -> bool:
    return isinstance(value, str) and "\x00" in value


def has_nul(value: Any) -> bool:
    """Whether a string anywhere in ``value`` holds a NUL character (PostgreSQL text cannot store one)."""
    return any(_nul(item) for item, _ in _walk(value))


class InModel(BaseModel):
    """Base of every request body: NUL characters and nesting deeper than ``MAX_DEPTH`` are refused (422)."""

    @model_validator(mode="before")
    @classmethod
    def _plain(cls, data: Any) -> Any:
        for item, depth in _walk(data):
            if depth > MAX_DEPTH:
                raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
            if _nul(item):
                raise ValueError("text must not contain NUL (\\x00) characters")
        return data


class ErrorBody(BaseModel):
    code: str = Field(examples=["validation_error"])
    message: str
    details: Any | None = None


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer has this shape."""

    error: ErrorBody


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class LatestPage(Page[T], Generic[T]):
    """A page of a latest-first list, with the keyset cursor of the older page."""

    next_before: int | None = Field(
        None, description="Cursor of the next, older page: pass it as `before` (instead of an offset, which "
        "slows down the deeper it goes); null on the last page.")

    @classmethod
    def of(cls, rows: Sequence[Any], item: Callable[[Any], T], *, total: int, limit: int, offset: int):
        """The page of ``rows``' first ``limit`` (fetch one more, so the page knows whether an older one follows)."""
        page = rows[:limit]
        return cls(items=[item(r) for r in page], total=total, limit=limit, offset=offset,
                   next_before=page[-1].id if len(rows) > limit else None)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        401: "Missing or unknown API key",
        403: "The key's role may not call this endpoint",
        413: "Request body or batch too large",
        422: "Invalid request",
        429: "Rate limit exceeded for this key",
    }.items()
}
