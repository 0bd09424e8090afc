"""A log writer like a container's: one O_APPEND descriptor, numbered lines at a steady rate.

    python writer.py PATH LINES_PER_S SECONDS     prints the number of lines written

SIGTERM ends it early, after a whole line.

Each line is written by one write(2) and reads ``<n> <filler> <n>``; the filler's length varies
with n, so block boundaries fall inside lines.
"""

from __future__ import annotations

import os
import signal
import sys
import time

stopping = False


def stop(signum: int, frame: object) -> None:
    global stopping
    stopping = True


def line(n: int) -> bytes:
    return f"{n:09d} {'x' * (10 + (n * 7919) % 97)} {n:09d}\n".encode()


def main() -> None:
    path, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    signal.signal(signal.SIGTERM, stop)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    total = int(rate * seconds)
    start = time.monotonic()
    written = 0
    for n in range(total):
        if stopping:
            break
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        os.write(fd, line(n))
        written += 1
    os.close(fd)
    print(written, flush=True)


if __name__ == "__main__":
    main()
