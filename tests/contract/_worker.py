"""A stand-in gateway process for the multi-process contract tests.

``python -m tests.contract._worker hammer KIND TARGET PREFIX TENANT N USD`` connects,
prints ``ready``, waits for a line on stdin (so several workers start together
however long each took to start), tries N reserve+settle pairs and prints
``{"ok": .., "refused": .., "first": t0, "last": t1}``.
``... crashy KIND TARGET PREFIX TENANT LOG USD`` reserves and settles forever,
appending ``R id`` after each reserve and ``S id`` after each settle to LOG
(flushed), until it is killed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

from budget.ledger import BudgetExceeded, Cost
from tests.contract._stores import make_store


async def hammer(kind: str, target: str, prefix: str, tenant: str, n: int, usd: float) -> None:
    store = make_store(kind, target, prefix)
    await store.get_tenant(tenant)  # connect before the start signal
    print("ready", flush=True)
    sys.stdin.readline()  # blocking on purpose: nothing else runs before the start
    first = time.time()
    ok = refused = 0
    for _ in range(n):
        try:
            r = await store.reserve(tenant, Cost(usd=usd, tokens=1))
        except BudgetExceeded:
            refused += 1
            continue
        await store.settle(r.id, Cost(usd=usd, tokens=1))
        ok += 1
    last = time.time()
    await store.close()
    print(json.dumps({"ok": ok, "refused": refused, "first": first, "last": last}))


async def crashy(kind: str, target: str, prefix: str, tenant: str, log: str, usd: float) -> None:
    store = make_store(kind, target, prefix)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.write(fd, b"START\n")
    while True:
        r = await store.reserve(tenant, Cost(usd=usd, tokens=1), ttl_s=1.0)
        os.write(fd, f"R {r.id}\n".encode())
        await store.settle(r.id, Cost(usd=usd, tokens=1))
        os.write(fd, f"S {r.id}\n".encode())


if __name__ == "__main__":
    mode, kind, target, prefix, tenant, arg, usd = sys.argv[1:8]
    if mode == "hammer":
        asyncio.run(hammer(kind, target, prefix, tenant, int(arg), float(usd)))
    else:
        asyncio.run(crashy(kind, target, prefix, tenant, arg, float(usd)))
