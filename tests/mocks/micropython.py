"""A recording stand-in for the `micropython` module (const, kbd_intr) for CPython unit tests."""

kbd_intr_calls = []


def const(x):
    return x


def kbd_intr(c):
    kbd_intr_calls.append(c)
