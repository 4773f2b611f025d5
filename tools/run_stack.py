"""`make run`: start Rasa (5005), the action server (5055) and the web app with the
scheduler (8000) on the configured database; Ctrl-C stops all of them."""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stack import ROOT, Stack  # noqa: E402


def main() -> int:
    env = {"PAINPATH_SCHEDULER": "1"}
    stack = Stack(env=env, log_dir=ROOT / "var" / "logs",
                  tracker_db=str(ROOT / "var" / "rasa_tracker.db"))
    stack.log_dir.mkdir(parents=True, exist_ok=True)
    print("starting Rasa (5005), actions (5055), web app + scheduler (8000); "
          f"logs in {stack.log_dir.relative_to(ROOT)}/ … (Rasa takes ~40 s to load)", flush=True)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        stack.start(timeout=300)
    except Exception as exc:
        print(f"start-up failed: {exc}", file=sys.stderr)
        stack.stop()
        return 1
    print(f"PainPath is up: Rasa {stack.rasa_url}, web {stack.web_url}. "
          f"Demo chat link: `{ROOT / '.venv/bin/painpath'} chat-link --patient <id>` "
          "(printed above by the seed step). Ctrl-C stops everything.", flush=True)
    while not stopping:
        for name, proc in stack.procs.items():
            if proc.poll() is not None:
                print(f"{name} exited ({proc.returncode}); stopping. Log tail:\n{stack.tail(name)}")
                stopping = True
        time.sleep(1)
    print("stopping …", flush=True)
    stack.stop()
    print("stopped.")
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
