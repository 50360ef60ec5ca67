"""CPython stand-in for MicroPython's built-in `micropython` module: the firmware modules the host
tools, benches and tests import say `from micropython import const`; on the host const is identity.
On a board the built-in module always wins (this file is never copied or frozen)."""


def const(x):
    return x
