"""Rasa's tracker reads and writes, per conversation turn: Rasa 3.6's own
`SQLTrackerStore` against PainPath's `ResilientSQLTrackerStore`
(bot/painpath_rasa/tracker_store.py), on the same PostgreSQL server.

    PYTHONPATH=. .venv/bin/python bench/tracker_store.py [--conversations 50] [--turns 12]

A turn in Rasa reads the conversation's tracker once and saves it once, after the
actions (`MessageProcessor.handle_message`; a check-in started through the HTTP API
saves twice). Each store gets a fresh database
(`--pg-admin-url`, databases `painpath_bench_ts_*`, dropped and created) and plays the
same turns: `--conversations` conversations in turn, `--turns` turns each, five
events a turn (a check-in answer: the user's message, the form, a slot, the question,
listen). Both run in this process on Rasa's own event loop calls, one after the
other, twice (rasa, painpath, rasa, painpath) to show the noise of a shared machine.
Prints ms per read, per write and per turn; writes bench/results/tracker_store.json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OUT = ROOT / "bench" / "results" / "tracker_store.json"


def turn_events(k: int) -> list[Any]:
    from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered

    return [UserUttered(f"my pain is about {k % 10}", {"name": "inform", "confidence": 0.93},
                        parse_data={"intent": {"name": "inform", "confidence": 0.93},
                                    "entities": [], "text": f"my pain is about {k % 10}"}),
            ActionExecuted("checkin_form"), SlotSet("pain_now", str(k % 10)),
            BotUttered("Thanks. Since the injection, how much relief have you had, 0-100%?"),
            ActionExecuted("action_listen")]


async def play(store: Any, domain: Any, conversations: int, turns: int) -> dict[str, float]:
    from rasa.shared.core.events import ActionExecuted, SessionStarted
    from rasa.shared.core.trackers import DialogueStateTracker

    reads: list[float] = []
    writes: list[float] = []
    for k in range(turns):
        for c in range(conversations):
            sender = f"bench-{c}"
            t0 = time.perf_counter()
            tracker = await store.retrieve(sender)
            reads.append(time.perf_counter() - t0)
            if tracker is None:
                tracker = DialogueStateTracker.from_events(sender, [
                    ActionExecuted("action_session_start"), SessionStarted(),
                    ActionExecuted("action_listen")], domain.slots)
            for event in turn_events(k):
                tracker.update(event)
            t0 = time.perf_counter()
            await store.save(tracker)  # after the actions
            writes.append(time.perf_counter() - t0)
    read_ms = statistics.mean(reads) * 1000
    write_ms = statistics.mean(writes) * 1000
    return {"read_ms": round(read_ms, 3), "write_ms": round(write_ms, 3),
            "turn_ms": round(read_ms + write_ms, 3),
            "read_p95_ms": round(sorted(reads)[int(len(reads) * 0.95)] * 1000, 3),
            "write_p95_ms": round(sorted(writes)[int(len(writes) * 0.95)] * 1000, 3),
            "events_per_tracker_at_end": 3 + 5 * turns}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--conversations", type=int, default=50)
    p.add_argument("--turns", type=int, default=12)
    p.add_argument("--pg-admin-url", default=os.environ.get(
        "PAINPATH_BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = p.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import bot.painpath_rasa  # noqa: F401 - PainPath's Rasa patches, as in the server
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain

    from bench.load import recreate_database
    from bot.painpath_rasa.tracker_store import ResilientSQLTrackerStore

    domain = Domain.load(str(ROOT / "bot" / "domain"))
    host = args.pg_admin_url.split("@", 1)[1].split("/", 1)[0]
    hostname, _, port = host.partition(":")
    stores = {"rasa": SQLTrackerStore, "painpath": ResilientSQLTrackerStore}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in stores}
    for rnd in range(2):
        for name, cls in stores.items():
            db = f"painpath_bench_ts_{name}"
            recreate_database(args.pg_admin_url, db)
            store = cls(domain, dialect="postgresql", host=hostname, port=int(port or 5432),
                        db=db, username="postgres")
            figures = asyncio.run(play(store, domain, args.conversations, args.turns))
            store.engine.dispose()
            runs[name].append(figures)
            print(f"round {rnd + 1} {name:8s} read {figures['read_ms']:.2f} ms  write "
                  f"{figures['write_ms']:.2f} ms  per turn (read + write) "
                  f"{figures['turn_ms']:.2f} ms", flush=True)
    best = {name: min(r["turn_ms"] for r in rs) for name, rs in runs.items()}
    print(f"per turn, best of 2: Rasa's store {best['rasa']:.2f} ms, PainPath's "
          f"{best['painpath']:.2f} ms ({best['rasa'] / best['painpath']:.1f}x)")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "run_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(), "cpus": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "conversations": args.conversations, "turns": args.turns,
        "runs": runs, "best_turn_ms": best}, indent=2) + "\n")
    print(f"results written to {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
