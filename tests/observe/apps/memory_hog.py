"""Keeps allocating 4 MB every 100 ms (touching each page), up to 2 GB: under a memory limit the
kernel's OOM killer picks it, whenever the limit comes.

    python memory_hog.py
"""

from __future__ import annotations

import time

print("ready", flush=True)
chunks = []
for _ in range(500):
    chunks.append(bytearray(4 << 20))
    time.sleep(0.1)
time.sleep(3600)
