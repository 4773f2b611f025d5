#!/usr/bin/env python
"""Check-in latency over SMS: simulated patients against the real stack.

Starts everything itself: a fake Twilio REST server in this process, a temporary
migrated SQLite database with a clinic and an on-call clinician, and the real Rasa
server, action server and web app (tools/stack.py) on free ports. Patients are
enrolled with a baseline pain score, so every check-in has the same shape
(epidural steroid injection, 6 h check-in: two YES/NO safety questions, pain now,
percent relief, then the summary).

Default mode (closed loop): `--patients` simulated patients at once each complete
`--checkins-per-patient` check-ins back to back (each as a freshly enrolled number).
A patient sends a signed inbound-SMS webhook, waits for the bot's reply, pauses
`--min-pause`..`--max-pause` s as a person would, and answers the next question.

`--saturation` (open loop): a fixed-rate sender offers answers at increasing
message rates (a pool of started check-ins; each send answers the question one
patient is waiting on) and reports the highest rate at which the per-turn p95
stays within `--target-ms`.

Per turn it measures
  server:     just before the webhook POST is sent (client, time.monotonic) → the
              fake Twilio's `received_at` for the first reply SMS to that patient,
              i.e. "webhook received → reply handed to Twilio";
  question:   same start → the last reply SMS of the turn (the next question);
  round trip: same start → the webhook's HTTP response back at the client.
Both clocks are time.monotonic() in this process (the fake runs on a thread here).

Prints p50/p95/max, messages per second achieved, RSS (process + children, peak
and end) and CPU of the rasa, actions and web processes, and merges the results
into bench/results/checkin_latency.json (key "load" or "saturation").

Run:  cd /work/main && PYTHONPATH=/work/main .venv/bin/python bench/checkin_latency.py
      ... bench/checkin_latency.py --saturation
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
for _p in (str(ROOT / "tools"), str(ROOT)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import httpx  # noqa: E402

from tests.fakes.fake_twilio import FakeTwilio, SentSms, sign  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "checkin_latency.json"
PROCEDURE = "epidural_steroid_injection"
CLINIC_SLUG = "bench"
CLINIC_PHONE = "+14155559990"
CLINICIAN_PHONE = "+14155559991"
TURNS_PER_CHECKIN = 4  # neuro, headache, pain now, relief (baseline given at enrolment)
MAX_TURNS = 15  # per check-in: a guard against a conversation that never ends

STOP = threading.Event()


def patient_phone(k: int) -> str:
    """Distinct valid US numbers +1 415 555 0100, 0101, … (phonenumbers accepts them)."""
    if k >= 9800:
        raise ValueError("too many simulated patients")
    return f"+1415555{100 + k:04d}"


# --- fake Twilio inbox: per-number index so waiting does not scan every SMS ---------------
class Inbox(list):  # type: ignore[type-arg]
    """FakeTwilio's `messages` list, also indexed by recipient with a wait per number."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._by_to: dict[str, tuple[list[SentSms], threading.Condition]] = {}

    def _slot(self, to: str) -> tuple[list[SentSms], threading.Condition]:
        with self._lock:
            slot = self._by_to.get(to)
            if slot is None:
                slot = self._by_to[to] = ([], threading.Condition())
            return slot

    def append(self, sms: SentSms) -> None:  # type: ignore[override]
        super().append(sms)
        msgs, cond = self._slot(sms.to)
        with cond:
            msgs.append(sms)
            cond.notify_all()

    def count(self, to: str) -> int:
        msgs, cond = self._slot(to)
        with cond:
            return len(msgs)

    def since(self, to: str, start: int, timeout: float) -> list[SentSms]:
        """Messages to `to` from index `start` on, waiting up to `timeout` for at least one."""
        msgs, cond = self._slot(to)
        deadline = time.monotonic() + timeout
        with cond:
            while len(msgs) <= start:
                left = deadline - time.monotonic()
                if left <= 0 or STOP.is_set():
                    return []
                cond.wait(min(left, 0.5))
            return list(msgs[start:])


# --- the simulated person -----------------------------------------------------------------
class Script:
    """Recognises the bot's messages and answers them like a person would."""

    def __init__(self) -> None:
        from painpath.content import message

        self.done_markers = [message(k) for k in ("checkin_done", "summary_next",
                                                  "summary_no_answers")]

    def is_done(self, texts: list[str]) -> bool:
        return any(m in t for t in texts for m in self.done_markers)

    @staticmethod
    def kind(text: str) -> str | None:
        low = text.lower()
        if "reply yes or no" in low:
            return "yesno"
        if "relief" in low or "%" in text:
            return "percent"
        if "0 (no pain) to 10" in low or "one number" in low or "pain" in low:
            return "pain"
        return None

    @staticmethod
    def answer(kind: str, rng: random.Random, reasked: bool) -> str:
        if kind == "yesno":
            return "no" if reasked else rng.choice(["no", "No", "nope", "no"])
        if kind == "percent":
            return "50" if reasked else "about 50%"
        n = rng.randint(2, 6)
        return str(n) if reasked else rng.choice([f"{n}", f"about a {n}", f"it's a {n}"])


@dataclass
class Identity:
    idx: int
    patient_id: str
    phone: str
    last_texts: list[str] = field(default_factory=list)
    turns: int = 0
    reasks: int = 0


@dataclass
class Turn:
    kind: str
    t_sched: float
    t_send: float
    t_return: float
    t_first: float | None
    t_last: float | None
    status: int
    replies: int
    error: str | None = None

    @property
    def server_ms(self) -> float | None:
        return None if self.t_first is None else (self.t_first - self.t_send) * 1000

    @property
    def question_ms(self) -> float | None:
        return None if self.t_last is None else (self.t_last - self.t_send) * 1000

    @property
    def roundtrip_ms(self) -> float:
        return (self.t_return - self.t_send) * 1000

    @property
    def from_sched_ms(self) -> float | None:
        return None if self.t_first is None else (self.t_first - self.t_sched) * 1000


class Bench:
    """The running stack plus the helpers to talk to it."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.inbox = Inbox()
        self.twilio = FakeTwilio(messages=self.inbox)
        self.tmp = Path(tempfile.mkdtemp(prefix="painpath-bench-"))
        self.db_url = f"sqlite:///{self.tmp / 'painpath.db'}"
        self.stack: Any = None
        self.script: Script | None = None
        self.next_phone = 0
        self._local = threading.local()
        self.errors: list[str] = []

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        from stack import Stack, free_port  # tools/stack.py

        from painpath import messaging
        from painpath.db import new_session
        from painpath.enrollment import ensure_clinic
        from painpath.migrate import upgrade
        from painpath.models import Clinician
        from painpath.settings import get_settings

        self.twilio.start()
        upgrade(self.db_url)
        rasa_port = free_port()
        env = {**self.twilio.env(), "DATABASE_URL": self.db_url,
               "PAINPATH_SECRET_KEY": "bench-secret",
               "PUBLIC_BASE_URL": f"http://127.0.0.1:{rasa_port}"}
        self.stack = Stack(env=env, rasa_port=rasa_port, actions_port=free_port(),
                           web_port=free_port(), log_dir=self.tmp,
                           tracker_db=str(self.tmp / "tracker.db"))
        env["RASA_URL"] = self.stack.rasa_url
        env["WEB_BASE_URL"] = self.stack.web_url
        # this process starts check-ins like the scheduler: same settings as the stack
        os.environ.update(env)
        get_settings.cache_clear()
        messaging.set_gateway(None)
        with new_session(self.db_url) as session, session.begin():
            c = ensure_clinic(session, CLINIC_SLUG, "Bench Pain Clinic", phone=CLINIC_PHONE)
            session.add(Clinician(clinic_id=c.id, name="Bench Oncall", phone=CLINICIAN_PHONE,
                                  role="nurse", on_call="primary"))
        self.script = Script()
        log(f"starting stack (logs and DB in {self.tmp}) …")
        t0 = time.monotonic()
        try:
            self.stack.start()
        except BaseException:
            for name in ("actions", "rasa", "web"):
                log(f"--- {name} log ---\n{self.stack.tail(name)}")
            raise
        log(f"stack up in {time.monotonic() - t0:.1f} s: rasa {self.stack.rasa_url}, "
            f"pids {self.stack.pids()}")

    def stop(self) -> None:
        STOP.set()
        if self.stack is not None:
            try:
                self.stack.stop()
            except BaseException as exc:  # noqa: BLE001 - keep stopping the rest
                log(f"stack stop: {exc!r}")
        self.twilio.stop()
        if self.args.keep_tmp:
            log(f"kept logs and DB in {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def webhook_url(self) -> str:
        return f"{self.stack.rasa_url}/webhooks/twilio/webhook"

    def client(self) -> httpx.Client:
        c = getattr(self._local, "client", None)
        if c is None:
            c = self._local.client = httpx.Client(timeout=60)
        return c

    # --- patients -------------------------------------------------------------------------
    def enroll(self, n: int) -> list[Identity]:
        from painpath.db import new_session
        from painpath.enrollment import EnrollmentRequest, enroll

        when = datetime.now(timezone.utc) - timedelta(hours=self.args.hours_ago)
        out = []
        with new_session(self.db_url) as session, session.begin():
            for _ in range(n):
                k = self.next_phone
                self.next_phone += 1
                phone = patient_phone(k)
                p = enroll(session, EnrollmentRequest(
                    clinic_slug=CLINIC_SLUG, phone=phone, procedure=PROCEDURE,
                    procedure_at=when, timezone="America/New_York", name=f"Bench {k}",
                    baseline_pain=self.args.baseline_pain))
                out.append(Identity(idx=k, patient_id=p.id, phone=phone))
        return out

    def _settle(self, who: Identity, start: int, got: list[SentSms]) -> list[SentSms]:
        """Wait until the turn's replies end in a question or the summary."""
        assert self.script is not None
        deadline = time.monotonic() + 30
        while not STOP.is_set():
            texts = [m.body for m in got]
            if texts and (self.script.is_done(texts) or self.script.kind(texts[-1])):
                return got
            if time.monotonic() > deadline:
                return got
            more = self.inbox.since(who.phone, start + len(got), 1.0)
            got = got + more
        return got

    def start_checkin(self, who: Identity) -> float:
        """Start the patient's check-in as the scheduler does; returns ms to the first SMS."""
        from painpath.channels import start_checkin

        n0 = self.inbox.count(who.phone)
        t0 = time.monotonic()
        start_checkin(who.patient_id)
        got = self.inbox.since(who.phone, n0, 60)
        got = self._settle(who, n0, got)
        who.last_texts = [m.body for m in got]
        if not got:
            raise RuntimeError(f"no SMS after starting the check-in of {who.patient_id}")
        return (got[0].received_at - t0) * 1000

    def turn(self, who: Identity, rng: random.Random, t_sched: float | None = None) -> Turn:
        """Answer the question `who` is waiting on with a signed inbound-SMS webhook."""
        assert self.script is not None
        question = who.last_texts[-1] if who.last_texts else ""
        kind = self.script.kind(question) or "unknown"
        reasked = question.startswith("Please reply")
        body = Script.answer(kind if kind != "unknown" else "yesno", rng, reasked)
        params = {"From": who.phone, "To": self.twilio.from_number, "Body": body,
                  "MessageSid": "SM" + secrets.token_hex(16),
                  "AccountSid": self.twilio.account_sid, "NumMedia": "0"}
        headers = {"X-Twilio-Signature": sign(self.twilio.auth_token, self.webhook_url, params)}
        client = self.client()
        n0 = self.inbox.count(who.phone)
        error = None
        status = 0
        t_send = time.monotonic()
        try:
            resp = client.post(self.webhook_url, data=params, headers=headers)
            status = resp.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        t_return = time.monotonic()
        got: list[SentSms] = []
        if error is None and status == 200:
            got = self.inbox.since(who.phone, n0, 30)
            got = self._settle(who, n0, got)
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

    def done(self, who: Identity) -> bool:
        assert self.script is not None
        return self.script.is_done(who.last_texts)


# --- process RSS / CPU -------------------------------------------------------------------
try:
    import psutil  # type: ignore[import-not-found]
except ImportError:  # not in the venv: read /proc
    psutil = None


def _proc_children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def process_tree(pid: int) -> list[int]:
    if psutil is not None:
        try:
            p = psutil.Process(pid)
            return [pid] + [c.pid for c in p.children(recursive=True)]
        except psutil.Error:
            return []
    kids = _proc_children()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ProcMonitor:
    """Samples RSS (process + children) of each stack process; CPU over a window."""

    def __init__(self, pids: dict[str, int], interval: float = 0.5) -> None:
        self.pids = {k: v for k, v in pids.items() if k in ("rasa", "actions", "web")}
        self.pids["bench"] = os.getpid()  # the load generator + fake Twilio (own pid only)
        self.interval = interval
        self.peak: dict[str, int] = {k: 0 for k in self.pids}
        self.last: dict[str, int] = {k: 0 for k in self.pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _tree(self, name: str) -> list[int]:
        return [self.pids[name]] if name == "bench" else process_tree(self.pids[name])

    def sample(self) -> None:
        for name in self.pids:
            kb = sum(rss_kb(p) for p in self._tree(name))
            self.last[name] = kb
            self.peak[name] = max(self.peak[name], kb)

    def cpu(self) -> dict[str, float]:
        return {name: sum(cpu_seconds(p) for p in self._tree(name)) for name in self.pids}

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> "ProcMonitor":
        self.sample()
        self._cpu0, self._t0 = self.cpu(), time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sample()
        self._cpu1, self._t1 = self.cpu(), time.monotonic()

    def report(self) -> dict[str, Any]:
        wall = max(1e-9, self._t1 - self._t0)
        return {name: {"pid": self.pids[name],
                       "rss_mb_end": round(self.last[name] / 1024, 1),
                       "rss_mb_peak": round(self.peak[name] / 1024, 1),
                       "cpu_percent": round(100 * (self._cpu1[name] - self._cpu0[name]) / wall, 1)}
                for name in self.pids}


# --- statistics ------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summarize(values: list[float | None]) -> dict[str, Any]:
    v = [x for x in values if x is not None]
    r = lambda x: None if x is None else round(x, 1)  # noqa: E731
    return {"n": len(v), "p50": r(percentile(v, 0.50)), "p95": r(percentile(v, 0.95)),
            "p99": r(percentile(v, 0.99)), "max": r(max(v) if v else None),
            "mean": r(sum(v) / len(v) if v else None)}


def turn_stats(turns: list[Turn]) -> dict[str, Any]:
    ok = [t for t in turns if t.error is None]
    return {"turns": len(turns), "errors": len(turns) - len(ok),
            "server_ms": summarize([t.server_ms for t in ok]),
            "question_ms": summarize([t.question_ms for t in ok]),
            "roundtrip_ms": summarize([t.roundtrip_ms for t in ok]),
            "by_kind_server_p95_ms": {
                k: summarize([t.server_ms for t in ok if t.kind == k])["p95"]
                for k in sorted({t.kind for t in ok})}}


def log(msg: str) -> None:
    print(msg, flush=True)


def fmt(s: dict[str, Any]) -> str:
    return f"p50 {s['p50']} ms  p95 {s['p95']} ms  max {s['max']} ms  (n={s['n']})"


# --- default mode: closed loop, people pausing between answers ----------------------------
def run_load(bench: Bench) -> dict[str, Any]:
    a = bench.args
    turns: list[Turn] = []
    starts: list[float] = []
    lock = threading.Lock()
    identities = bench.enroll(a.patients * a.checkins_per_patient)
    log(f"enrolled {len(identities)} patients; {a.patients} at once, "
        f"{a.checkins_per_patient} check-in(s) each, pauses {a.min_pause}–{a.max_pause} s")

    def person(i: int) -> None:
        rng = random.Random(a.seed * 1000 + i)
        for k in range(a.checkins_per_patient):
            who = identities[i * a.checkins_per_patient + k]
            if k and STOP.wait(rng.uniform(a.min_pause, a.max_pause)):
                return
            try:
                ms = bench.start_checkin(who)
            except Exception as exc:  # noqa: BLE001 - reported below
                bench.errors.append(f"start {who.patient_id}: {exc!r}")
                return
            with lock:
                starts.append(ms)
            while not bench.done(who) and who.turns < MAX_TURNS:
                if STOP.wait(rng.uniform(a.min_pause, a.max_pause)):
                    return
                t = bench.turn(who, rng)
                with lock:
                    turns.append(t)
                if t.error:
                    return
            if not bench.done(who):
                bench.errors.append(f"{who.patient_id}: no summary after {who.turns} turns")

    threads = [threading.Thread(target=person, args=(i,), daemon=True) for i in range(a.patients)]
    with ProcMonitor(bench.stack.pids()) as mon:
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.5)
        wall = time.monotonic() - t0
    completed = sum(1 for w in identities if bench.done(w))
    sends = [t.t_send for t in turns]
    window = (max(t.t_return for t in turns) - min(sends)) if turns else 0.0
    phones = {w.phone for w in identities}
    n_out = len([m for m in list(bench.inbox) if m.to in phones])
    res = {
        "mode": "closed-loop", "patients_at_once": a.patients,
        "checkins_per_patient": a.checkins_per_patient,
        "pause_s": [a.min_pause, a.max_pause], "baseline_pain": a.baseline_pain,
        "checkins_completed": completed, "checkins_total": len(identities),
        "wall_s": round(wall, 1), "window_s": round(window, 1),
        "inbound_msgs_per_s": round(len(turns) / window, 2) if window else None,
        "outbound_sms_per_s": round(n_out / wall, 2) if wall else None,
        **turn_stats(turns),
        "reasks": sum(w.reasks for w in identities),
        "checkin_start_ms": summarize(starts),
        "target_p95_ms": a.target_ms,
        "processes": mon.report(),
        "error_samples": bench.errors[:10],
    }
    res["meets_target"] = (res["server_ms"]["p95"] is not None
                           and res["server_ms"]["p95"] <= a.target_ms and not res["errors"])
    log("")
    log(f"check-ins completed: {completed}/{len(identities)}; turns {res['turns']}, "
        f"errors {res['errors']}, re-asks {res['reasks']}")
    log(f"server (webhook → first reply at Twilio): {fmt(res['server_ms'])}")
    log(f"  … → next question at Twilio:            {fmt(res['question_ms'])}")
    log(f"client round trip (webhook HTTP):          {fmt(res['roundtrip_ms'])}")
    log(f"check-in start (trigger → first SMS):      {fmt(res['checkin_start_ms'])}")
    log(f"inbound messages/s achieved: {res['inbound_msgs_per_s']} "
        f"(outbound SMS/s {res['outbound_sms_per_s']}) over {res['window_s']} s")
    log_procs(res["processes"])
    log(f"target p95 ≤ {a.target_ms:.0f} ms: {'MET' if res['meets_target'] else 'NOT MET'}")
    return res


def log_procs(procs: dict[str, Any]) -> None:
    for name, p in procs.items():
        log(f"  {name:8s} pid {p['pid']:>7}  RSS end {p['rss_mb_end']:7.1f} MB  "
            f"peak {p['rss_mb_peak']:7.1f} MB  CPU {p['cpu_percent']:5.1f} %")


# --- saturation: open loop at fixed offered rates ------------------------------------------
def run_rate(bench: Bench, rate: float, rng: random.Random) -> dict[str, Any]:
    a = bench.args
    n = math.ceil(rate * max(a.step_seconds, a.min_samples / rate) / TURNS_PER_CHECKIN * 1.25) + 2
    identities = bench.enroll(n)
    t_start = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:  # start check-ins outside the window
        list(pool.map(bench.start_checkin, identities))
    log(f"  rate {rate:5.1f}/s: {n} check-ins started in {time.monotonic() - t_start:.1f} s")
    time.sleep(1.0)
    ready = deque(identities)
    lock = threading.Lock()
    turns: list[Turn] = []
    skipped = 0
    completed = 0

    def one(who: Identity, t_sched: float) -> None:
        nonlocal completed
        t = bench.turn(who, random.Random(rng.random()), t_sched)
        with lock:
            turns.append(t)
            if bench.done(who):
                completed += 1
            elif t.error is None and who.turns < MAX_TURNS:
                ready.append(who)

    step_s = max(a.step_seconds, a.min_samples / rate)
    total = int(rate * step_s)
    workers = ThreadPoolExecutor(max_workers=256)
    with ProcMonitor(bench.stack.pids()) as mon:
        t0 = time.monotonic() + 0.2
        for i in range(total):
            t_sched = t0 + i / rate
            delay = t_sched - time.monotonic()
            if delay > 0 and STOP.wait(delay):
                break
            with lock:
                who = ready.popleft() if ready else None
            if who is None:
                skipped += 1
                continue
            workers.submit(one, who, t_sched)
        workers.shutdown(wait=True)
        t_end = time.monotonic()
    sent = len(turns)
    window = (max(t.t_return for t in turns) - t0) if turns else 0.0
    res = {"offered_msgs_per_s": rate, "step_s": round(step_s, 1), "scheduled": total,
           "sent": sent, "skipped_no_ready_patient": skipped,
           "achieved_msgs_per_s": round(sent / window, 2) if window else 0.0,
           "drain_s": round(t_end - (t0 + (total - 1) / rate), 2),  # last send → all replied
           **turn_stats(turns),
           "from_schedule_ms": summarize([t.from_sched_ms for t in turns if t.error is None]),
           "checkins_completed": completed, "processes": mon.report()}
    p95 = res["server_ms"]["p95"]
    res["kept_up"] = bool(res["errors"] == 0 and skipped <= 0.02 * total
                          and res["achieved_msgs_per_s"] >= 0.9 * rate)
    res["ok"] = bool(res["kept_up"] and p95 is not None and p95 <= a.target_ms)
    log(f"  rate {rate:5.1f}/s: achieved {res['achieved_msgs_per_s']:5.2f}/s, "
        f"server {fmt(res['server_ms'])}, round trip p95 {res['roundtrip_ms']['p95']} ms, "
        f"errors {res['errors']}, skipped {skipped} → "
        f"{'ok' if res['ok'] else 'kept up, p95 over target' if res['kept_up'] else 'OVERLOADED'}")
    log_procs(res["processes"])
    return res


def run_saturation(bench: Bench) -> dict[str, Any]:
    a = bench.args
    rng = random.Random(a.seed)
    steps: list[dict[str, Any]] = []
    log(f"saturation: open-loop fixed-rate sender, {a.step_seconds:.0f} s per step, "
        f"target p95 ≤ {a.target_ms:.0f} ms")
    rates = [float(r) for r in a.rates.split(",")] if a.rates else None
    rate = a.start_rate
    best: float | None = None  # highest rate meeting the p95 target
    worst: float | None = None  # lowest rate missing it
    kept: float | None = None  # highest rate the stack kept up with (any latency)
    i = 0
    while not STOP.is_set():
        if rates is not None:
            if i >= len(rates):
                break
            rate = rates[i]
        elif rate > a.max_rate:
            break
        i += 1
        res = run_rate(bench, rate, rng)
        steps.append(res)
        if res["kept_up"]:
            kept = rate if kept is None else max(kept, rate)
        if res["ok"]:
            best = rate if best is None else max(best, rate)
        else:
            worst = rate if worst is None else min(worst, rate)
            if rates is None and (not res["kept_up"] or not a.past_target):
                break
        rate = round(rate * a.rate_factor, 1)
        time.sleep(2.0)
    # one refinement step between the last good and the first bad rate
    if rates is None and best is not None and worst is not None and a.refine and not STOP.is_set():
        mid = round((best + worst) / 2, 1)
        if best < mid < worst:
            time.sleep(2.0)
            res = run_rate(bench, mid, rng)
            steps.append(res)
            if res["ok"]:
                best = mid
            else:
                worst = mid
            if res["kept_up"] and (kept is None or mid > kept):
                kept = mid
    res = {"mode": "open-loop fixed rate", "target_p95_ms": a.target_ms,
           "step_s": a.step_seconds, "saturation_msgs_per_s": best,
           "first_failing_msgs_per_s": worst, "max_kept_up_msgs_per_s": kept,
           "steps": steps,
           "error_samples": bench.errors[:10]}
    log("")
    tried = min((s["offered_msgs_per_s"] for s in steps), default=None)
    point = (f"{best} msg/s" if best is not None
             else f"not reached at any tested rate (lowest tried {tried} msg/s)")
    log(f"saturation point (highest offered rate with p95 ≤ {a.target_ms:.0f} ms, no errors, "
        f"rate kept up): {point}; first failing rate: {worst} msg/s; "
        f"highest rate kept up at any latency: {kept} msg/s")
    return res


# --- main -------------------------------------------------------------------------------------
def ensure_model(given: str | None) -> str:
    """`tools/train.py` (a no-op when up to date), or the model given with --model."""
    import stack

    if given:
        path = Path(given).resolve()
        if not path.exists():
            raise SystemExit(f"no model {given}")
        stack.latest_model = lambda: path  # Stack.start() serves this model
        return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "train.py")], cwd=ROOT,
                       capture_output=True, text=True)
    if r.returncode != 0:
        tail = "\n".join((r.stdout + r.stderr).splitlines()[-15:])
        raise SystemExit(f"tools/train.py failed (pass --model to serve an existing model):\n{tail}")
    from stack import latest_model

    return str(latest_model().relative_to(ROOT))


def git_commit() -> str | None:
    try:
        r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                           capture_output=True, text=True, timeout=10)
        return r.stdout.strip() or None
    except OSError:
        return None


def write_results(key: str, section: dict[str, Any], meta: dict[str, Any],
                  results: Path = RESULTS) -> None:
    """Merge `section` under `key` into the JSON file `results` (atomic replace)."""
    results.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {}
    if results.exists():
        try:
            data = json.loads(results.read_text())
        except ValueError:
            data = {}
    data[key] = {**meta, "loadavg_after": [round(x, 2) for x in os.getloadavg()], **section}
    data["updated_at"] = meta["run_at"]
    tmp = results.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(results)
    log(f"results ({key}) written to {results.relative_to(ROOT)}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Simulated patients complete SMS check-ins (signed Twilio webhooks) "
                    "against the real Rasa + action server + web app with a fake Twilio; "
                    "reports per-turn latency (webhook sent → reply handed to Twilio), "
                    "messages/s and RSS per process. Starts and stops everything itself.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--patients", type=int, default=20, help="simulated patients at once")
    p.add_argument("--checkins-per-patient", type=int, default=3,
                   help="check-ins each simulated patient completes back to back "
                        "(each as a freshly enrolled number, so all have the same shape)")
    p.add_argument("--min-pause", type=float, default=1.0,
                   help="shortest pause (s) between the bot's reply and the answer")
    p.add_argument("--max-pause", type=float, default=3.0, help="longest pause (s)")
    p.add_argument("--baseline-pain", type=float, default=7,
                   help="baseline pain given at enrolment (so the baseline question is skipped)")
    p.add_argument("--hours-ago", type=float, default=7,
                   help="procedure time before now (7 h: the 6 h check-in is due)")
    p.add_argument("--target-ms", type=float, default=150.0, help="p95 target per turn (ms)")
    p.add_argument("--seed", type=int, default=1, help="random seed (pauses, answers)")
    p.add_argument("--saturation", action="store_true",
                   help="instead of the closed-loop run, find the saturation point: offer "
                        "increasing fixed message rates (open loop) until p95 > target")
    p.add_argument("--start-rate", type=float, default=0.5, help="saturation: first rate (msg/s)")
    p.add_argument("--rate-factor", type=float, default=2.0,
                   help="saturation: each step multiplies the rate by this")
    p.add_argument("--max-rate", type=float, default=60.0, help="saturation: highest rate tried")
    p.add_argument("--rates", default=None,
                   help="saturation: explicit comma-separated rates instead of the geometric "
                        "steps (all are run)")
    p.add_argument("--step-seconds", type=float, default=20.0,
                   help="saturation: seconds of sending per rate step")
    p.add_argument("--min-samples", type=int, default=30,
                   help="saturation: a step lasts long enough for at least this many turns")
    p.add_argument("--past-target", action="store_true",
                   help="saturation: keep raising the rate after p95 misses the target, until "
                        "the stack no longer keeps up (finds the throughput ceiling too)")
    p.add_argument("--no-refine", dest="refine", action="store_false",
                   help="saturation: skip the extra step between the last good and first bad rate")
    p.add_argument("--no-warmup", dest="warmup", action="store_false",
                   help="skip the one unmeasured warm-up check-in")
    p.add_argument("--model", default=None,
                   help="serve this trained model instead of running tools/train.py first "
                        "(e.g. when the current training data does not train)")
    p.add_argument("--keep-tmp", action="store_true",
                   help="keep the temp dir (DB, endpoints.yml, process logs)")
    p.add_argument("--no-write", dest="write", action="store_false",
                   help=f"don't write {RESULTS.relative_to(ROOT)}")
    a = p.parse_args(argv)
    if a.patients < 1 or a.checkins_per_patient < 1:
        p.error("--patients and --checkins-per-patient must be ≥ 1")
    if not 0 <= a.min_pause <= a.max_pause:
        p.error("need 0 ≤ --min-pause ≤ --max-pause")
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def on_term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    model = ensure_model(args.model)
    meta = {"run_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "git_commit": git_commit(), "model": model, "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": [round(x, 2) for x in os.getloadavg()],
            "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
            "latency_definition": "server = client monotonic time just before the webhook POST "
                                  "→ fake Twilio received_at of the first reply SMS; question = "
                                  "→ last reply SMS of the turn; roundtrip = → HTTP response"}
    bench = Bench(args)
    code = 0
    try:
        bench.start()
        if args.warmup:
            who = bench.enroll(1)[0]
            bench.start_checkin(who)
            rng = random.Random(0)
            warm: list[Turn] = []
            while not bench.done(who) and who.turns < MAX_TURNS and not STOP.is_set():
                warm.append(bench.turn(who, rng))
                if warm[-1].error:
                    break
            bench.errors.clear()
            meta["warmup_single_patient_server_ms"] = [
                None if t.server_ms is None else round(t.server_ms, 1) for t in warm]
            log(f"warm-up check-in done ({who.turns} turns, one patient alone, not in the "
                f"stats): server ms {meta['warmup_single_patient_server_ms']}")
        if args.saturation:
            section, key = run_saturation(bench), "saturation"
        else:
            section, key = run_load(bench), "load"
            code = 0 if section["checkins_completed"] == section["checkins_total"] else 1
        if args.write:
            write_results(key, section, meta)
    except KeyboardInterrupt:
        log("interrupted: stopping the stack")
        code = 130
    finally:
        bench.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
