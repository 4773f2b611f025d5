#!/usr/bin/env python
"""Escalation burst: many red-flag SMS at once, measured to the nurse's alert SMS.

Reuses bench/checkin_latency.py's harness (Bench: fake Twilio in this process, a temp
migrated SQLite DB with a clinic and an on-call *primary* nurse, and the real Rasa
server, action server and web app via tools/stack.py on free ports).

`--messages` enrolled patients (one message each, all different patients, no check-in
in progress) each send one red-flag SMS as a signed inbound webhook. The sends are
open loop: scheduled evenly (or `--poisson`) over `--window` seconds, each in its own
thread, so a slow request never delays the schedule. Every text is one the triage
engine rates emergency, crisis or urgent (checked at start-up with painpath.triage).

Per message it measures (both clocks time.monotonic() in this process):
  alert:  just before the webhook POST → the fake Twilio's `received_at` of the nurse
          alert "PainPath alert #<escalation id>: ..." for that patient's escalation
          (escalation id → patient from the DB `escalation` table after the run);
  reply:  same start → the first SMS to the patient (their safety reply);
  round trip: same start → the webhook's HTTP response.
and from the DB timestamps (wall clock, same host) a breakdown of the alert time:
webhook → inbound SMS recorded → escalation created → alert at the fake Twilio.

"Lost alerts" = escalations recorded in the DB with no alert received by the fake
Twilio (must be 0). Targets: p95 webhook → alert ≤ `--target-ms` (1 s), zero lost.
Prints p50/p95/max, counts, RSS/CPU per process and the load average; writes
bench/results/escalation.json (key "<messages>_in_<window>s").

Run:  cd /work/main && PYTHONPATH=/work/main .venv/bin/python bench/escalation.py
      ... bench/escalation.py --messages 10 --window 2
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import re
import secrets
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _p in (str(ROOT / "tools"), str(ROOT)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import httpx  # noqa: E402

from bench.checkin_latency import (  # noqa: E402
    CLINICIAN_PHONE, STOP, Bench, Identity, ProcMonitor, ensure_model, fmt, git_commit,
    log, log_procs, summarize)
from bench.checkin_latency import write_results as _write_results  # noqa: E402
from tests.fakes.fake_twilio import sign  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "escalation.json"
ALERT_RE = re.compile(r"^PainPath alert #(\d+):")

# Realistic red-flag texts; each must triage as emergency, crisis or urgent (checked).
RED_FLAGS = [
    "i cant feel my legs and i wet myself",
    "temp 102.5 and my back is killing me and my neck is stiff",
    "i want to end it all tonight",
    "the incision is red and leaking pus",
    "fever 101.3 and chills",
    "my legs went numb and I cant hold my pee",
    "worst headache of my life and my neck is stiff",
    "I have chest pain and cant breathe",
    "I'm thinking about killing myself",
    "the injection site is swollen hot and draining",
    "i have a fever of 101 and shaking chills",
    "I cant move my left foot since this morning",
    "I lost control of my bowels and my bottom is numb",
    "I want to die, I have pills saved up",
    "my face is swollen and my throat feels tight",
    "i've been throwing up and have a terrible headache that gets worse when i sit up",
    "fever 102 and night sweats",
    "new weakness in both legs and numbness in my groin",
    "there is pus coming out of the wound",
    "i cant stop bleeding from the injection site",
]
ALERTING = ("emergency", "crisis", "urgent")


@dataclass
class Sent:
    who: Identity
    text: str
    tier: str  # what painpath.triage says
    t_sched: float
    t_send: float = 0.0
    wall_send: float = 0.0  # time.time() at t_send (for the DB timestamps)
    t_return: float = 0.0
    status: int = 0
    n0: int = 0  # SMS to the patient before the send
    error: str | None = None


def check_texts() -> dict[str, str]:
    """Each text's triage tier; refuses to run with a text that would not page."""
    from painpath.triage import triage

    tiers = {}
    for text in RED_FLAGS:
        result = triage(text)
        tier = getattr(result, "tier", None) or str(result)
        if tier not in ALERTING:
            raise SystemExit(f"red-flag text does not triage as alerting ({tier}): {text!r}")
        tiers[text] = tier
    return tiers


def post(bench: Bench, s: Sent) -> None:
    """Send one signed inbound-SMS webhook at its scheduled time (runs in its own thread)."""
    client = bench.shared_client
    delay = s.t_sched - time.monotonic()
    if delay > 0 and STOP.wait(delay):
        return
    params = {"From": s.who.phone, "To": bench.twilio.from_number, "Body": s.text,
              "MessageSid": "SM" + secrets.token_hex(16),
              "AccountSid": bench.twilio.account_sid, "NumMedia": "0"}
    headers = {"X-Twilio-Signature": sign(bench.twilio.auth_token, bench.webhook_url, params)}
    s.n0 = bench.inbox.count(s.who.phone)
    s.wall_send = time.time()
    s.t_send = time.monotonic()
    try:
        resp = client.post(bench.webhook_url, data=params, headers=headers)
        s.status = resp.status_code
        if s.status != 200:
            s.error = f"HTTP {s.status}"
    except httpx.HTTPError as exc:
        s.error = f"{type(exc).__name__}: {exc}"
    s.t_return = time.monotonic()


def nurse_alerts(bench: Bench) -> dict[int, list[float]]:
    """Escalation id → fake Twilio received_at of each alert SMS to the nurse."""
    out: dict[int, list[float]] = {}
    for m in list(bench.inbox):
        if m.to != CLINICIAN_PHONE:
            continue
        hit = ALERT_RE.match(m.body)
        if hit:
            out.setdefault(int(hit.group(1)), []).append(m.received_at)
    return out


def db_rows(bench: Bench, patient_ids: set[str]) -> tuple[list[Any], dict[str, datetime],
                                                          dict[str, int]]:
    """Escalations of these patients, their first inbound SMS time, alert rows by status."""
    from sqlalchemy import func, select

    from painpath.db import new_session
    from painpath.models import Escalation, Message

    with new_session(bench.db_url) as session:
        escs = session.execute(select(Escalation.id, Escalation.patient_id, Escalation.tier,
                                      Escalation.created_at)
                               .where(Escalation.patient_id.in_(patient_ids))
                               .order_by(Escalation.id)).all()
        inbound = dict(session.execute(
            select(Message.patient_id, func.min(Message.created_at))
            .where(Message.direction == "in", Message.patient_id.in_(patient_ids))
            .group_by(Message.patient_id)).all())
        ids = {e.id for e in escs}
        statuses: dict[str, int] = {}
        for body, status in session.execute(
                select(Message.body, Message.status).where(
                    Message.to == CLINICIAN_PHONE, Message.body.like("PainPath alert%"))).all():
            hit = ALERT_RE.match(body)
            if hit and int(hit.group(1)) in ids:  # only these patients' (not the warm-up)
                statuses[status] = statuses.get(status, 0) + 1
    # SQLite may hand back strings for an aggregate over a TypeDecorator column
    fixed = {}
    for pid, v in inbound.items():
        if isinstance(v, str):
            v = datetime.fromisoformat(v)
        if v is not None and v.tzinfo is None:
            v = v.replace(tzinfo=timezone.utc)
        fixed[pid] = v
    return list(escs), fixed, statuses


def run(bench: Bench, tiers: dict[str, str]) -> dict[str, Any]:
    a = bench.args
    rng = random.Random(a.seed)
    identities = bench.enroll(a.messages)
    texts = [RED_FLAGS[i % len(RED_FLAGS)] for i in range(a.messages)]
    rng.shuffle(texts)
    mono_to_wall = time.time() - time.monotonic()
    t0 = time.monotonic() + 0.5
    if a.poisson:
        offsets, t = [], 0.0
        for _ in range(a.messages):
            offsets.append(t)
            t += rng.expovariate(a.messages / a.window)
        scale = a.window / max(offsets[-1], 1e-9) if offsets[-1] > a.window else 1.0
        offsets = [o * scale for o in offsets]  # keep every send inside the window
    else:
        offsets = [i * a.window / a.messages for i in range(a.messages)]
    sends = [Sent(who=w, text=x, tier=tiers[x], t_sched=t0 + o)
             for w, x, o in zip(identities, texts, offsets)]
    log(f"enrolled {len(identities)} patients; sending {a.messages} red flags over "
        f"{a.window:g} s ({'Poisson' if a.poisson else 'evenly spaced'}, open loop); "
        f"tiers {dict(sorted(_count(s.tier for s in sends).items()))}")
    load_during: list[tuple[float, ...]] = []
    cpu0 = system_cpu()
    with ProcMonitor(bench.stack.pids()) as mon:
        # one thread per message, all started before the window: nothing queues behind
        pool = ThreadPoolExecutor(max_workers=a.messages)
        for s in sends:
            pool.submit(post, bench, s)
        while time.monotonic() < t0 + a.window:
            time.sleep(0.5)
            load_during.append(os.getloadavg())
        pool.shutdown(wait=True)
        last_send = max((s.t_send for s in sends), default=t0)
        # wait for every patient's reply and an alert per escalation (or the timeout)
        deadline = time.monotonic() + a.drain_timeout
        pids = {s.who.patient_id for s in sends}
        while time.monotonic() < deadline and not STOP.is_set():
            replied = sum(1 for s in sends if bench.inbox.count(s.who.phone) > s.n0)
            escs, _, _ = db_rows(bench, pids)
            alerts = nurse_alerts(bench)
            if replied == len(sends) and len(escs) >= len(sends) and \
                    all(e.id in alerts for e in escs):
                break
            time.sleep(0.25)
        t_end = time.monotonic()
        time.sleep(a.settle)  # late duplicates, if any, would show up here
    cpu1 = system_cpu()
    drain_s = t_end - last_send
    procs = mon.report()
    busy = 100 * (cpu1[0] - cpu0[0]) / max(1e-9, cpu1[1] - cpu0[1])  # % of all CPUs
    ours_cpu = sum(p["cpu_percent"] for p in procs.values()) / (os.cpu_count() or 1)

    escs, inbound_at, alert_statuses = db_rows(bench, pids)
    alerts = nurse_alerts(bench)
    by_pid = {s.who.patient_id: s for s in sends}
    esc_by_pid: dict[str, list[Any]] = {}
    for e in escs:
        esc_by_pid.setdefault(e.patient_id, []).append(e)

    alert_ms, reply_ms, rt_ms = [], [], []
    to_inbound, inbound_to_esc, esc_to_alert, send_to_esc = [], [], [], []
    lost, not_escalated, wrong = [], [], []
    per_tier: dict[str, list[float]] = {}
    samples = []  # per message: offset in the window (s), tier, alert ms, reply ms
    for s in sends:
        if s.error is None:
            rt_ms.append((s.t_return - s.t_send) * 1000)
        got = bench.inbox.since(s.who.phone, s.n0, 0.0) if s.t_send else []
        r_ms = (got[0].received_at - s.t_send) * 1000 if got else None
        if r_ms is not None:
            reply_ms.append(r_ms)
        mine = esc_by_pid.get(s.who.patient_id, [])
        a_ms = None
        if mine and mine[0].id in alerts:
            a_ms = (min(alerts[mine[0].id]) - s.t_send) * 1000
        samples.append([round(s.t_sched - t0, 2), s.tier, None if a_ms is None else round(a_ms, 1),
                        None if r_ms is None else round(r_ms, 1)])
        if not mine:
            not_escalated.append(s.text)
            continue
        e = mine[0]
        if e.tier != s.tier:
            wrong.append(f"{s.text!r}: triage {s.tier}, escalation {e.tier}")
        created = e.created_at.timestamp()
        send_to_esc.append((created - s.wall_send) * 1000)
        ib = inbound_at.get(s.who.patient_id)
        if ib is not None:
            to_inbound.append((ib.timestamp() - s.wall_send) * 1000)
            inbound_to_esc.append((created - ib.timestamp()) * 1000)
        if e.id in alerts:
            first = min(alerts[e.id])
            ms = (first - s.t_send) * 1000
            alert_ms.append(ms)
            per_tier.setdefault(e.tier, []).append(ms)
            esc_to_alert.append((first + mono_to_wall - created) * 1000)
    for e in escs:
        if e.id not in alerts:
            lost.append(e.id)
    ours = {e.id for e in escs}
    alerts_ours = {k: v for k, v in alerts.items() if k in ours}
    n_alert_sms = sum(len(v) for v in alerts_ours.values())
    errors = [f"{s.who.patient_id}: {s.error}" for s in sends if s.error]
    sends_ok = [s for s in sends if s.t_send]
    lag = [(s.t_send - s.t_sched) * 1000 for s in sends_ok]
    span = (max(s.t_send for s in sends_ok) - min(s.t_send for s in sends_ok)) if sends_ok else 0

    res = {
        "messages": a.messages, "window_s": a.window,
        "schedule": "poisson" if a.poisson else "even",
        "send_span_s": round(span, 2),
        "send_lag_ms": summarize(lag),  # actual send − scheduled send (open-loop check)
        "tiers_sent": _count(s.tier for s in sends),
        "webhook_errors": len(errors), "error_samples": errors[:10],
        "escalations_in_db": len(escs),
        "escalations_by_tier": _count(e.tier for e in escs),
        "patients_not_escalated": len(not_escalated),
        "not_escalated_samples": not_escalated[:10],
        "tier_mismatches": wrong[:10],
        "alerts_received": n_alert_sms,
        "escalations_with_alert": len(alerts_ours),
        "duplicate_alerts": n_alert_sms - len(alerts_ours),
        "lost_alerts": len(lost), "lost_alert_ids": lost[:20],
        "alert_rows_by_status": alert_statuses,  # message table; "queued" = Twilio accepted
        "patients_replied": len(reply_ms),
        "alert_ms": summarize(alert_ms),
        "alert_ms_by_tier": {k: summarize(v) for k, v in sorted(per_tier.items())},
        "reply_ms": summarize(reply_ms),
        "roundtrip_ms": summarize(rt_ms),
        "breakdown_ms": {  # DB wall-clock stamps vs the send (same host clock)
            "webhook_to_inbound_recorded": summarize(to_inbound),
            "inbound_recorded_to_escalation_created": summarize(inbound_to_esc),
            "webhook_to_escalation_created": summarize(send_to_esc),
            "escalation_created_to_alert_at_twilio": summarize(esc_to_alert)},
        "alert_ms_by_window_fifth": [  # does latency grow through the window (a queue)?
            summarize([x[2] for x in samples if k * a.window / 5 <= x[0] < (k + 1) * a.window / 5])
            for k in range(5)],
        "drain_s_after_last_send": round(drain_s, 2),
        "target_p95_ms": a.target_ms,
        "processes": procs,
        "system_cpu_busy_percent": round(busy, 1),  # all CPUs, over the measured window
        "other_work_cpu_percent": round(max(0.0, busy - ours_cpu), 1),  # not stack, not bench
        "loadavg_during_max1": round(max((x[0] for x in load_during), default=0.0), 2),
        "samples": samples,
    }
    p95 = res["alert_ms"]["p95"]
    res["meets_target"] = bool(p95 is not None and p95 <= a.target_ms and not lost
                               and not not_escalated and not errors)

    log("")
    log(f"webhook errors {len(errors)}; sends spread over {res['send_span_s']} s, "
        f"send lag vs schedule p95 {res['send_lag_ms']['p95']} ms")
    log(f"escalations in DB: {len(escs)} / {a.messages} messages "
        f"{res['escalations_by_tier']}; not escalated: {len(not_escalated)}")
    log(f"alerts received by fake Twilio: {n_alert_sms} "
        f"(for {len(alerts_ours)} escalations, duplicates {res['duplicate_alerts']}); "
        f"alert rows by status {alert_statuses}")
    log(f"LOST ALERTS (escalation without an alert): {len(lost)}"
        + (f" ids {lost[:20]}" if lost else ""))
    log(f"webhook → nurse alert at Twilio:     {fmt(res['alert_ms'])}")
    for tier, st in res["alert_ms_by_tier"].items():
        log(f"    {tier:9s}                        {fmt(st)}")
    log(f"webhook → patient safety reply:      {fmt(res['reply_ms'])}")
    log(f"webhook HTTP round trip:             {fmt(res['roundtrip_ms'])}")
    b = res["breakdown_ms"]
    log("breakdown (DB timestamps, p50 / p95 ms): "
        f"webhook → inbound recorded {b['webhook_to_inbound_recorded']['p50']} / "
        f"{b['webhook_to_inbound_recorded']['p95']}; → escalation created "
        f"{b['inbound_recorded_to_escalation_created']['p50']} / "
        f"{b['inbound_recorded_to_escalation_created']['p95']}; → alert at Twilio "
        f"{b['escalation_created_to_alert_at_twilio']['p50']} / "
        f"{b['escalation_created_to_alert_at_twilio']['p95']}")
    log("webhook → alert p50 / p95 ms by fifth of the window: " + ", ".join(
        f"{x['p50']} / {x['p95']}" for x in res["alert_ms_by_window_fifth"]))
    log(f"all answered {res['drain_s_after_last_send']} s after the last send")
    log_procs(res["processes"])
    log(f"whole machine busy {res['system_cpu_busy_percent']} % of {os.cpu_count()} CPUs "
        f"during the run, of which other work (not the stack, not this bench) "
        f"{res['other_work_cpu_percent']} %; 1-min load average peaked at "
        f"{res['loadavg_during_max1']}")
    log(f"target p95 webhook → alert ≤ {a.target_ms:.0f} ms and zero lost: "
        f"{'MET' if res['meets_target'] else 'NOT MET'}")
    return res


def system_cpu() -> tuple[float, float]:
    """(busy jiffies, total jiffies) over all CPUs from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = f[3] + (f[4] if len(f) > 4 else 0)
    total = sum(f[:8])
    return float(total - idle), float(total)


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


def warm_up(bench: Bench, tiers: dict[str, str]) -> list[float]:
    """Unmeasured red flags from a separate patient (first NLU/TF calls are slow).

    Different tiers in turn; the dedupe window folds repeats into the first
    escalation, so each text uses a fresh patient."""
    out = []
    for text in ("i want to end it all tonight", "fever 101.3 and chills",
                 "i cant feel my legs and i wet myself"):
        who = bench.enroll(1)[0]
        s = Sent(who=who, text=text, tier=tiers[text], t_sched=time.monotonic())
        post(bench, s)
        got = bench.inbox.since(who.phone, s.n0, 30)
        out.append(round((got[0].received_at - s.t_send) * 1000, 1) if got else None)
    deadline = time.monotonic() + 10  # let the warm-up alerts arrive too
    while time.monotonic() < deadline and \
            len([m for m in list(bench.inbox) if m.to == CLINICIAN_PHONE]) < 3:
        time.sleep(0.1)
    return out


def write_results(key: str, section: dict[str, Any], meta: dict[str, Any]) -> None:
    _write_results(key, section, meta, results=RESULTS)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="A burst of red-flag SMS from different patients against the real stack "
                    "(fake Twilio, SQLite); measures webhook → nurse alert SMS and → the "
                    "patient's safety reply, and counts lost alerts.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--messages", type=int, default=100,
                   help="red-flag SMS, each from a different enrolled patient")
    p.add_argument("--window", type=float, default=10.0, help="seconds to send them over")
    p.add_argument("--poisson", action="store_true",
                   help="Poisson arrivals over the window instead of evenly spaced")
    p.add_argument("--target-ms", type=float, default=1000.0,
                   help="p95 target, webhook → alert (ms)")
    p.add_argument("--drain-timeout", type=float, default=120.0,
                   help="after the last send, wait this long for replies and alerts")
    p.add_argument("--settle", type=float, default=2.0,
                   help="extra seconds after everything arrived (catches duplicates)")
    p.add_argument("--seed", type=int, default=1, help="random seed (text order, Poisson)")
    p.add_argument("--no-warmup", dest="warmup", action="store_false",
                   help="skip the unmeasured warm-up red flags")
    p.add_argument("--model", default=None,
                   help="serve this trained model instead of running tools/train.py first")
    p.add_argument("--keep-tmp", action="store_true",
                   help="keep the temp dir (DB, endpoints.yml, process logs)")
    p.add_argument("--no-write", dest="write", action="store_false",
                   help=f"don't write {RESULTS.relative_to(ROOT)}")
    a = p.parse_args(argv)
    if a.messages < 1 or a.window <= 0:
        p.error("need --messages ≥ 1 and --window > 0")
    # what Bench.enroll needs: no check-in is started, so these only shape enrolment
    a.hours_ago, a.baseline_pain = 7.0, 7.0
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def on_term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    tiers = check_texts()
    model = ensure_model(args.model)
    meta: dict[str, Any] = {
        "run_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(), "model": model, "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "latency_definition": "alert = client monotonic time just before the webhook POST → "
                              "fake Twilio received_at of the nurse alert for that patient's "
                              "escalation (id from the DB); reply = → first SMS to the patient; "
                              "roundtrip = → webhook HTTP response"}
    bench = Bench(args)
    # one thread-safe client for all senders: a new httpx.Client per thread costs tens of
    # ms of CPU (SSL context), which would land inside the send window
    bench.shared_client = httpx.Client(  # type: ignore[attr-defined]
        timeout=60, limits=httpx.Limits(max_connections=args.messages + 10,
                                        max_keepalive_connections=args.messages + 10))
    code = 0
    try:
        bench.start()
        if args.warmup:
            meta["warmup_reply_ms"] = warm_up(bench, tiers)
            log(f"warm-up red flags (not in the stats): reply ms {meta['warmup_reply_ms']}")
        section = run(bench, tiers)
        meta["log_dir"] = str(bench.tmp) if args.keep_tmp else None
        code = 0 if (section["lost_alerts"] == 0 and section["patients_not_escalated"] == 0
                     and section["webhook_errors"] == 0) else 1
        log(f"load average now {tuple(round(x, 2) for x in os.getloadavg())} "
            f"(before {tuple(meta['loadavg_before'])}; {os.cpu_count()} CPUs)")
        if args.write:
            write_results(f"{args.messages}_in_{args.window:g}s", section, meta)
    except KeyboardInterrupt:
        log("interrupted: stopping the stack")
        code = 130
    finally:
        bench.stop()
        bench.shared_client.close()  # type: ignore[attr-defined]
    return code


if __name__ == "__main__":
    sys.exit(main())
