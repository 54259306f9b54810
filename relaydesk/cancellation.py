"""Cancellation that Python 3.11's ``asyncio.wait_for`` can lose.

On 3.11, ``wait_for`` returns the result when the cancel of its task arrives in the same turn
of the loop as that result (fixed in 3.12, where it is built on ``asyncio.timeout``); aio-pika,
aiormq and rstream connect through it. A start that was asked to stop then carried on: a
service logged ``service_start_abandoned`` and then ``bus_connected`` and ``service_ready``.

The task still knows it was asked to stop (``Task.cancelling()`` counts the requests that were
not taken back with ``uncancel()``), so a step that must not outlive a cancel checks it once
it is done, undoes what it built, and raises.
"""

import asyncio


def cancel_requested() -> bool:
    """True when the running task was asked to stop, whether or not a wait noticed."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # called outside a running loop: no task to have been cancelled
        return False
    return task is not None and task.cancelling() > 0


def raise_if_cancel_requested() -> None:
    """Raise the ``CancelledError`` a lost cancel should have raised."""
    if cancel_requested():
        raise asyncio.CancelledError
