"""Read-ahead by one item in a worker thread, so decoding overlaps with the caller's work."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def prefetched(items: Iterator[T]) -> Iterator[T]:
    """Yield from `items` while the next item is produced in the background.

    Worth it when producing releases the GIL (pyarrow decoding Parquet); an exception raised
    while producing an item is raised here, where that item would have been yielded.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tessy-prefetch") as pool:
        pending = pool.submit(next, items, _DONE)
        while (item := pending.result()) is not _DONE:
            pending = pool.submit(next, items, _DONE)
            yield item  # type: ignore[misc]
