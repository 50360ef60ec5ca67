# Scratch directories for filesystem tests, under CPython and micropython alike (/tmp on both).
import os
import random
import time

try:
    random.seed(time.ticks_us())  # micropython: the unix port's default seed repeats per run
except AttributeError:
    pass


def _exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def make(tag):
    """A new empty directory; remove it with clean()."""
    while True:
        d = "/tmp/itpump_fw_%s_%d" % (tag, random.getrandbits(30))
        if not _exists(d):
            os.mkdir(d)
            return d


def clean(d):
    """Remove d and everything below it."""
    if not _exists(d):
        return
    for name in os.listdir(d):
        p = d + "/" + name
        if os.stat(p)[0] & 0x4000:  # directory
            clean(p)
        else:
            os.remove(p)
    os.rmdir(d)


def in_dir(tag):
    """Decorates a test that takes a folder: it runs in a new one, removed afterwards (pytest and the
    micropython runner call the decorated test without arguments)."""

    def wrap(test):
        def run():
            d = make(tag)
            try:
                test(d)
            finally:
                clean(d)

        return run

    return wrap


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data, mode="wb"):
    with open(path, mode) as f:
        f.write(data)
