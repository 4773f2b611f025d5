#!/usr/bin/env python
"""Load: simulated patients chatting over SMS against the production-shaped stack.

Starts everything itself, once per tier size in `--servers` (default "1,2"):
a fake Twilio REST server in this process; a fresh PostgreSQL database (dropped and
created: `--pg-admin-url`, database `painpath_load_<n>`) holding PainPath's data,
Rasa's tracker store and APScheduler's job store; Redis (`--redis-url`) as Rasa's
lock store (PainPath's atomic Redis lock store, bot/endpoints.production.yml); and
n Rasa servers with n action servers (each Rasa server calls its own), the web app
and the scheduler (`painpath scheduler`), via tools/stack.py.

Paced phase (the issue's load): `--patients` simulated people at once for
`--duration` seconds. Each works through check-ins one after another (each as a
freshly enrolled number, epidural steroid injection, baseline pain given at
enrolment: two YES/NO safety questions, pain now, percent relief, summary). A
check-in is started as the scheduler starts one (trigger_intent through a Rasa
server); the person then answers each question with a signed inbound-SMS webhook
after a pause of `--min-pause`..`--max-pause` s (5–20 s). Every request — webhook
or check-in start — goes to the next Rasa server in turn (round robin, as a load
balancer would), so one patient's turns alternate between servers.

Capacity phase (`--capacity-seconds`, 0 to skip): `--capacity-patients` people
answering with no pause at all (closed loop): the messages per second the tier
sustains, to show how throughput scales with the number of servers.

Per turn: server latency = just before the webhook POST → the fake Twilio receives
the first reply SMS (both time.monotonic() in this process); also the webhook's
HTTP round trip. An error is a webhook that fails or is not answered by an SMS
within 30 s. RSS (process + children) of every stack process is sampled right
after warm-up ("start") and after the paced phase ("end"); growth over 10 % is
flagged. Targets: zero errors, turn p95 ≤ `--target-ms` (250 ms).

Prints the figures and merges them into bench/results/load.json.

Run:  cd /work/main && PYTHONPATH=/work/main .venv/bin/python bench/load.py
      ... bench/load.py --patients 20 --duration 60 --servers 1 --capacity-seconds 0
"""
from __future__ import annotations

import argparse
import itertools
import os
import platform
import random
import secrets
import signal
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _p in (str(ROOT / "tools"), str(ROOT)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import httpx  # noqa: E402

from bench.checkin_latency import (  # noqa: E402
    CLINIC_PHONE, CLINIC_SLUG, CLINICIAN_PHONE, MAX_TURNS, PROCEDURE, STOP, Bench, Identity,
    SentSms, Turn, ensure_model, fmt, git_commit, log, patient_phone, process_tree, rss_kb,
    summarize, cpu_seconds, turn_stats)
from bench.checkin_latency import write_results as _write_results  # noqa: E402
from tests.fakes.fake_twilio import sign  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "load.json"
RSS_GROWTH_LIMIT = 0.10


def recreate_database(admin_url: str, name: str) -> str:
    """Drop and create database `name` on the server of `admin_url`; returns its URL."""
    import psycopg2

    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


class Rss:
    """RSS (process + children) and CPU of every stack process, sampled in a thread."""

    def __init__(self, pids: dict[str, int], interval: float = 1.0) -> None:
        self.pids = dict(pids)
        self.interval = interval
        self.peak: dict[str, int] = {k: 0 for k in self.pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _tree(self, name: str) -> list[int]:
        # the bench's own children are the stack processes: count only its own pid
        return [self.pids[name]] if name == "bench" else process_tree(self.pids[name])

    def snapshot(self) -> dict[str, int]:
        out = {name: sum(rss_kb(p) for p in self._tree(name)) for name in self.pids}
        for name, kb in out.items():
            self.peak[name] = max(self.peak[name], kb)
        return out

    def cpu(self) -> dict[str, float]:
        return {name: sum(cpu_seconds(p) for p in self._tree(name)) for name in self.pids}

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.snapshot()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class LoadBench(Bench):
    """checkin_latency's harness on PostgreSQL + Redis with `servers` Rasa/action pairs."""

    def __init__(self, args: argparse.Namespace, servers: int) -> None:
        super().__init__(args)
        self.servers = servers
        self.db_url = ""
        self._rr = itertools.count()
        self._enroll_lock = threading.Lock()

    def start(self) -> None:
        from stack import Stack, free_port  # tools/stack.py

        from painpath import messaging
        from painpath.db import new_session
        from painpath.enrollment import ensure_clinic
        from painpath.migrate import upgrade
        from painpath.models import Clinician
        from painpath.settings import get_settings

        a = self.args
        self.db_url = recreate_database(a.pg_admin_url, f"painpath_load_{self.servers}")
        upgrade(self.db_url)
        self.twilio.start()
        env = {**self.twilio.env(), "DATABASE_URL": self.db_url,
               "PAINPATH_SECRET_KEY": "bench-secret",
               # behind a load balancer: Twilio signs the public URL, whichever server
               "PUBLIC_BASE_URL": "https://painpath.example.org"}
        self.stack = Stack(env=env, rasa_port=free_port(), actions_port=free_port(),
                           web_port=free_port(), log_dir=self.tmp, scheduler=True,
                           tracker_store_url=self.db_url, lock_store_url=a.redis_url,
                           replicas=[(free_port(), free_port()) for _ in range(self.servers - 1)],
                           production_endpoints=True)
        env["RASA_URL"] = self.stack.rasa_url
        env["WEB_BASE_URL"] = self.stack.web_url
        os.environ.update(env)
        get_settings.cache_clear()
        messaging.set_gateway(None)
        with new_session(self.db_url) as session, session.begin():
            c = ensure_clinic(session, CLINIC_SLUG, "Bench Pain Clinic", phone=CLINIC_PHONE)
            session.add(Clinician(clinic_id=c.id, name="Bench Oncall", phone=CLINICIAN_PHONE,
                                  role="nurse", on_call="primary"))
        from bench.checkin_latency import Script

        self.script = Script()
        log(f"starting {self.servers} Rasa server(s) + {self.servers} action server(s), web, "
            f"scheduler on {self.db_url.rsplit('@', 1)[-1]} and {a.redis_url} "
            f"(logs in {self.tmp}) …")
        t0 = time.monotonic()
        try:
            self.stack.start(timeout=300)
        except BaseException:
            for name in self.stack.procs:
                log(f"--- {name} log ---\n{self.stack.tail(name)}")
            raise
        log(f"stack up in {time.monotonic() - t0:.1f} s: pids {self.stack.pids()}")

    def stop(self) -> None:
        super().stop()
        try:
            import redis

            r = redis.Redis.from_url(self.args.redis_url)
            for key in r.scan_iter(f"{self.stack.lock_key_prefix}:*"):
                r.delete(key)
        except Exception:  # noqa: BLE001 - cleanup only
            pass

    def next_rasa(self) -> str:
        """Round robin over the Rasa servers (what a load balancer does)."""
        urls = self.stack.rasa_urls
        return urls[next(self._rr) % len(urls)]

    def enroll_one(self) -> Identity:
        from painpath.db import new_session
        from painpath.enrollment import EnrollmentRequest, enroll

        with self._enroll_lock:
            k = self.next_phone
            self.next_phone += 1
        # procedure an hour ago: no check-in falls due during the run, so the scheduler
        # never starts one by itself; the bench starts the first (6 h) one early
        when = datetime.now(timezone.utc) - timedelta(hours=1)
        with new_session(self.db_url) as session, session.begin():
            p = enroll(session, EnrollmentRequest(
                clinic_slug=CLINIC_SLUG, phone=patient_phone(k), procedure=PROCEDURE,
                procedure_at=when, timezone="America/New_York", name=f"Load {k}",
                baseline_pain=self.args.baseline_pain))
            return Identity(idx=k, patient_id=p.id, phone=patient_phone(k))

    def start_checkin(self, who: Identity) -> float:
        """Start the patient's next check-in as the scheduler does, via the next server."""
        from painpath.channels import SMS_CHANNEL
        from painpath.checkins import next_checkin
        from painpath.db import new_session
        from painpath.rasa_client import START_CHECKIN_INTENT, trigger_intent

        with new_session(self.db_url) as session:
            checkin = next_checkin(session, who.patient_id)
            if checkin is None:
                raise RuntimeError(f"no check-in to start for {who.patient_id}")
            checkin_id = checkin.id
        n0 = self.inbox.count(who.phone)
        t0 = time.monotonic()
        trigger_intent(who.patient_id, START_CHECKIN_INTENT,
                       entities={"checkin_id": str(checkin_id)}, output_channel=SMS_CHANNEL,
                       rasa_url=self.next_rasa())
        got = self.inbox.since(who.phone, n0, 60)
        got = self._settle(who, n0, got)
        who.last_texts = [m.body for m in got]
        if not got:
            raise RuntimeError(f"no SMS after starting the check-in of {who.patient_id}")
        return (got[0].received_at - t0) * 1000

    def turn(self, who: Identity, rng: random.Random, t_sched: float | None = None) -> Turn:
        """Answer the open question with a signed webhook to the next Rasa server."""
        from bench.checkin_latency import Script

        assert self.script is not None
        question = who.last_texts[-1] if who.last_texts else ""
        kind = self.script.kind(question) or "unknown"
        reasked = question.startswith("Please reply")
        body = Script.answer(kind if kind != "unknown" else "yesno", rng, reasked)
        params = {"From": who.phone, "To": self.twilio.from_number, "Body": body,
                  "MessageSid": "SM" + secrets.token_hex(16),
                  "AccountSid": self.twilio.account_sid, "NumMedia": "0"}
        signed = os.environ["PUBLIC_BASE_URL"] + "/webhooks/twilio/webhook"
        headers = {"X-Twilio-Signature": sign(self.twilio.auth_token, signed, params)}
        n0 = self.inbox.count(who.phone)
        error, status = None, 0
        url = self.next_rasa() + "/webhooks/twilio/webhook"
        t_send = time.monotonic()
        try:
            status = self.client().post(url, data=params, headers=headers).status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        t_return = time.monotonic()
        got: list[SentSms] = []
        if error is None and status == 200:
            got = self._settle(who, n0, self.inbox.since(who.phone, n0, 30))
            if not got:
                error = "no reply SMS within 30 s"
        elif error is None:
            error = f"HTTP {status}"
        who.turns += 1
        if got:
            who.last_texts = [m.body for m in got]
            if who.last_texts[-1].startswith("Please reply"):
                who.reasks += 1
        if error:
            self.errors.append(f"{who.patient_id}: {error}")
        return Turn(kind=kind, t_sched=t_sched if t_sched is not None else t_send,
                    t_send=t_send, t_return=t_return,
                    t_first=got[0].received_at if got else None,
                    t_last=got[-1].received_at if got else None,
                    status=status, replies=len(got), error=error)


def people(bench: LoadBench, n: int, seconds: float, min_pause: float, max_pause: float,
           seed: int) -> dict[str, Any]:
    """`n` people doing check-ins back to back for `seconds`; returns the figures."""
    turns: list[Turn] = []
    starts: list[float] = []
    start_errors: list[str] = []
    completed = 0
    abandoned = 0  # check-ins still open when the time was up (not errors)
    lock = threading.Lock()
    t_end = time.monotonic() + seconds

    def person(i: int) -> None:
        nonlocal completed, abandoned
        rng = random.Random(seed * 100_003 + i)
        if max_pause and STOP.wait(rng.uniform(0, max_pause)):  # stagger the first contact
            return
        while time.monotonic() < t_end and not STOP.is_set():
            try:
                who = bench.enroll_one()
                ms = bench.start_checkin(who)
            except Exception as exc:  # noqa: BLE001 - counted as an error
                with lock:
                    start_errors.append(repr(exc))
                return
            with lock:
                starts.append(ms)
            while not bench.done(who) and who.turns < MAX_TURNS:
                pause = rng.uniform(min_pause, max_pause)
                if time.monotonic() + pause >= t_end:
                    with lock:
                        abandoned += 1
                    return
                if pause and STOP.wait(pause):
                    return
                t = bench.turn(who, rng)
                with lock:
                    turns.append(t)
                if t.error:
                    return
            with lock:
                if bench.done(who):
                    completed += 1
                else:
                    start_errors.append(f"{who.patient_id}: no summary after {who.turns} turns")
            if max_pause and STOP.wait(rng.uniform(min_pause, max_pause)):
                return

    threads = [threading.Thread(target=person, args=(i,), daemon=True) for i in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.5)
    wall = time.monotonic() - t0
    stats = turn_stats(turns)
    ok_turns = stats["turns"] - stats["errors"]
    return {"patients": n, "seconds": round(wall, 1), "pause_s": [min_pause, max_pause],
            **stats, "error_rate": round(stats["errors"] / max(1, stats["turns"]), 4),
            "checkin_start_errors": len(start_errors), "start_error_samples": start_errors[:5],
            "checkin_start_ms": summarize(starts),
            "checkins_started": len(starts), "checkins_completed": completed,
            "checkins_cut_off_by_the_clock": abandoned,
            "turns_per_s": round(ok_turns / wall, 2) if wall else 0.0,
            "messages_per_s": round((ok_turns + len(starts)) / wall, 2) if wall else 0.0}


def run_tier(args: argparse.Namespace, servers: int) -> dict[str, Any]:
    STOP.clear()
    bench = LoadBench(args, servers)
    try:
        bench.start()
        # warm-up: a check-in through every server (first TF/NLU calls are slow)
        for _ in range(servers):
            who = bench.enroll_one()
            bench.start_checkin(who)
            rng = random.Random(0)
            while not bench.done(who) and who.turns < MAX_TURNS:
                if bench.turn(who, rng).error:
                    break
        bench.errors.clear()
        procs = {k: v for k, v in bench.stack.pids().items()}
        procs["bench"] = os.getpid()
        rss = Rss(procs)
        rss_start = rss.snapshot()
        cpu0, c0 = rss.cpu(), time.monotonic()
        rss.start()
        load0 = os.getloadavg()
        log(f"[{servers} server(s)] paced: {args.patients} patients for {args.duration:g} s, "
            f"pauses {args.min_pause:g}–{args.max_pause:g} s …")
        paced = people(bench, args.patients, args.duration, args.min_pause, args.max_pause,
                       args.seed)
        time.sleep(2)  # let late SMS and background work settle before the end sample
        rss_end = rss.snapshot()
        cpu1, c1 = rss.cpu(), time.monotonic()
        load1 = os.getloadavg()
        processes = {}
        for name in procs:
            start, end = rss_start[name] / 1024, rss_end[name] / 1024
            growth = (end - start) / start if start else 0.0
            processes[name] = {"pid": procs[name], "rss_mb_start": round(start, 1),
                               "rss_mb_end": round(end, 1),
                               "rss_mb_peak": round(rss.peak[name] / 1024, 1),
                               "rss_growth_percent": round(100 * growth, 1),
                               "cpu_percent": round(100 * (cpu1[name] - cpu0[name]) / (c1 - c0), 1)}
        paced["processes"] = processes
        paced["loadavg_start_end"] = [round(load0[0], 2), round(load1[0], 2)]
        paced["rss_growth_over_limit"] = sorted(
            n for n, p in processes.items() if n != "bench"
            and p["rss_growth_percent"] > 100 * RSS_GROWTH_LIMIT)
        p95 = paced["server_ms"]["p95"]
        paced["meets_target"] = bool(paced["errors"] == 0 and paced["checkin_start_errors"] == 0
                                     and p95 is not None and p95 <= args.target_ms
                                     and not paced["rss_growth_over_limit"])
        report_paced(servers, paced, args)
        capacity = None
        if args.capacity_seconds > 0 and not STOP.is_set():
            log(f"[{servers} server(s)] capacity: {args.capacity_patients} patients, no pauses, "
                f"{args.capacity_seconds:g} s …")
            capacity = people(bench, args.capacity_patients, args.capacity_seconds, 0.0, 0.0,
                              args.seed + 7)
            log(f"  capacity: {capacity['messages_per_s']} messages/s "
                f"({capacity['turns_per_s']} answers/s + check-in starts), "
                f"turn {fmt(capacity['server_ms'])}, errors {capacity['errors']}")
        rss.stop()
        return {"servers": servers, "paced": paced, "capacity": capacity,
                "log_dir": str(bench.tmp) if args.keep_tmp else None}
    finally:
        bench.stop()


def report_paced(servers: int, r: dict[str, Any], args: argparse.Namespace) -> None:
    log(f"[{servers} server(s)] turns {r['turns']}, errors {r['errors']} "
        f"(rate {r['error_rate']}), check-in start errors {r['checkin_start_errors']}; "
        f"check-ins started {r['checkins_started']}, completed {r['checkins_completed']}")
    s = r["server_ms"]
    log(f"  turn latency (webhook → first reply at Twilio): p50 {s['p50']} ms  p95 {s['p95']} ms"
        f"  p99 {s['p99']} ms  max {s['max']} ms  (n={s['n']})")
    log(f"  webhook round trip: {fmt(r['roundtrip_ms'])}")
    log(f"  check-in start (trigger → first SMS): {fmt(r['checkin_start_ms'])}")
    log(f"  throughput: {r['messages_per_s']} messages/s ({r['turns_per_s']} answers/s)")
    for name, p in r["processes"].items():
        log(f"  {name:9s} RSS start {p['rss_mb_start']:7.1f} MB  end {p['rss_mb_end']:7.1f} MB "
            f"({p['rss_growth_percent']:+5.1f} %)  peak {p['rss_mb_peak']:7.1f} MB  "
            f"CPU {p['cpu_percent']:5.1f} %")
    log(f"  1-min load average start/end {r['loadavg_start_end']} ({os.cpu_count()} CPUs)")
    log(f"  targets (0 errors, p95 ≤ {args.target_ms:.0f} ms, RSS growth ≤ "
        f"{100 * RSS_GROWTH_LIMIT:.0f} %): {'MET' if r['meets_target'] else 'NOT MET'}"
        + (f" — RSS grew beyond the limit: {r['rss_growth_over_limit']}"
           if r["rss_growth_over_limit"] else ""))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Simulated patients chatting by signed SMS webhooks against the full "
                    "stack on PostgreSQL + Redis with a fake Twilio, with 1 and then 2 Rasa "
                    "servers and action servers; reports errors, turn latency, RSS, throughput.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--patients", type=int, default=200, help="simulated patients at once")
    p.add_argument("--duration", type=float, default=300.0, help="seconds of paced load")
    p.add_argument("--min-pause", type=float, default=5.0, help="shortest pause between messages (s)")
    p.add_argument("--max-pause", type=float, default=20.0, help="longest pause (s)")
    p.add_argument("--servers", default="1,2",
                   help="comma-separated tier sizes to run (Rasa + action server pairs)")
    p.add_argument("--capacity-seconds", type=float, default=30.0,
                   help="seconds of the no-pause capacity phase per tier (0: skip)")
    p.add_argument("--capacity-patients", type=int, default=16,
                   help="people answering without pauses in the capacity phase")
    p.add_argument("--target-ms", type=float, default=250.0, help="turn p95 target (ms)")
    p.add_argument("--baseline-pain", type=float, default=7, help="baseline pain at enrolment")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--pg-admin-url", default=os.environ.get(
        "PAINPATH_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL URL allowed to create databases (painpath_load_<n> is recreated)")
    p.add_argument("--redis-url", default=os.environ.get(
        "PAINPATH_BENCH_REDIS_URL", "redis://127.0.0.1:6379/7"),
        help="Redis for Rasa's lock store (a fresh key prefix per run)")
    p.add_argument("--model", default=None,
                   help="serve this trained model instead of running tools/train.py first")
    p.add_argument("--keep-tmp", action="store_true", help="keep process logs")
    p.add_argument("--no-write", dest="write", action="store_false",
                   help=f"don't write {RESULTS.relative_to(ROOT)}")
    a = p.parse_args(argv)
    a.servers = [int(x) for x in str(a.servers).split(",") if x.strip()]
    if a.patients < 1 or a.duration <= 0 or not a.servers or min(a.servers) < 1:
        p.error("need --patients ≥ 1, --duration > 0 and --servers ≥ 1")
    if not 0 <= a.min_pause <= a.max_pause:
        p.error("need 0 ≤ --min-pause ≤ --max-pause")
    # what checkin_latency's Bench reads
    a.hours_ago, a.checkins_per_patient = 1.0, 1
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def on_term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    model = ensure_model(args.model)
    os.environ["PAINPATH_RASA_MODEL"] = str((ROOT / model).resolve())
    meta = {"run_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "git_commit": git_commit(), "model": model, "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": [round(x, 2) for x in os.getloadavg()],
            "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
            "machine_note": "shared machine: other engineers' work ran at the same time",
            "latency_definition": "turn = client monotonic time just before the webhook POST "
                                  "→ fake Twilio received_at of the first reply SMS"}
    tiers: list[dict[str, Any]] = []
    code = 0
    try:
        for servers in args.servers:
            tiers.append(run_tier(args, servers))
            if not tiers[-1]["paced"]["meets_target"]:
                code = 1
            time.sleep(3)
    except KeyboardInterrupt:
        log("interrupted: stopping the stack")
        return 130
    scaling = {}
    if len(tiers) > 1:
        base = tiers[0]
        for t in tiers[1:]:
            key = f"{t['servers']}_vs_{base['servers']}"
            scaling[key] = {
                "paced_messages_per_s": [base["paced"]["messages_per_s"],
                                         t["paced"]["messages_per_s"]],
                "paced_p95_ms": [base["paced"]["server_ms"]["p95"], t["paced"]["server_ms"]["p95"]]}
            if base["capacity"] and t["capacity"]:
                b, c = base["capacity"]["messages_per_s"], t["capacity"]["messages_per_s"]
                scaling[key]["capacity_messages_per_s"] = [b, c]
                scaling[key]["capacity_ratio"] = round(c / b, 2) if b else None
        log(f"scaling: {scaling}")
    log(f"load average now {tuple(round(x, 2) for x in os.getloadavg())} "
        f"(before {tuple(meta['loadavg_before'])}; {os.cpu_count()} CPUs, shared machine)")
    if args.write:
        key = f"{args.patients}p_{args.duration:g}s"
        _write_results(key, {"tiers": tiers, "scaling": scaling}, meta, results=RESULTS)
    return code


if __name__ == "__main__":
    sys.exit(main())
