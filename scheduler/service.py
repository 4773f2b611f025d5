"""APScheduler with a persistent SQLAlchemy job store on PainPath's database.

One process owns the job store (APScheduler's FAQ). Jobs have explicit ids,
`replace_existing`, `coalesce` and a deliberate `misfire_grace_time`; they take
no state but reload everything from the database, so a restart loses nothing.

The scheduler decides *what* is due; sending is the dispatcher's (painpath/dispatch.py).
By default the scheduler runs one dispatcher worker in-process (`make run`); with
dedicated workers (`painpath dispatcher --workers N`) start it with `dispatch=False`
(`painpath scheduler --no-dispatch`). The retry job is then only a safety net: it
sends what no worker picked up within 30 s.
"""
from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime, timezone

from apscheduler.events import EVENT_SCHEDULER_SHUTDOWN, EVENT_SCHEDULER_STARTED, SchedulerEvent
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from painpath.screening import run_timeouts
from painpath.settings import get_settings

logger = logging.getLogger(__name__)
logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per Rasa request otherwise

SWEEP_JOB_ID = "sweep-due-checkins"
SWEEP_SECONDS = 30
REPAGE_JOB_ID = "repage-escalations"
REPAGE_SECONDS = 15
RETRY_JOB_ID = "retry-messages"
RETRY_SECONDS = 10
PROGRAMS_JOB_ID = "self-management-prompts"
PROGRAMS_SECONDS = 60
SCREENS_JOB_ID = "screen-timeouts"
SCREENS_SECONDS = 15  # a screen's 10 minutes are kept to within a tick


# set by build_scheduler/run_forever for this process (jobs take no arguments)
_start_concurrency: int | None = None
_embedded: threading.Event | None = None  # set while an in-process dispatcher runs


def sweep_due_checkins() -> None:
    """Job: start every due check-in (idempotent), and send due reminders. Both skip a
    patient whose outreach is held by an open emergency or crisis; the sweep releases
    the holds of patients whose escalations were resolved (painpath/outreach.py)."""
    from painpath.scheduling import start_due_checkins

    result = start_due_checkins(concurrency=_start_concurrency)
    from painpath.scheduling import send_reminders

    reminded = send_reminders()
    if reminded:
        logger.info("sweep: reminded %d check-in(s)", len(reminded))
    if result.started or result.missed:
        logger.info("sweep: started %d, missed %d, deferred %d", len(result.started),
                    len(result.missed), len(result.deferred))


def self_management_prompts() -> None:
    """Job: start due pacing prompts and activity reviews; weekly progress summaries."""
    from painpath.programs import due_sessions, send_weekly_summaries

    started = due_sessions()
    summaries = send_weekly_summaries()
    if started or summaries:
        logger.info("self-management: started %d prompt(s), sent %d weekly summar%s",
                    len(started), len(summaries), "y" if len(summaries) == 1 else "ies")


def repage_escalations() -> None:
    """Job: page the next level for late acknowledgements; tell overdue urgent patients."""
    from painpath.escalation import run_repage

    sent = run_repage()
    if sent:
        logger.info("re-paged: %d message(s)", len(sent))


def screen_timeouts() -> None:
    """Job: escalate every safety screen with no reply by its due time (each once)."""
    sent = run_timeouts()
    if sent:
        logger.info("screen timeouts: %d message(s)", len(sent))


def retry_messages() -> None:
    """Job: resend failed SMS whose backoff has passed (alerts included), and send
    what no dispatcher picked up. Nothing to do while an in-process dispatcher runs."""
    from painpath.messaging import retry_due

    if _embedded is not None and _embedded.is_set():
        return
    retried = retry_due()
    if retried:
        logger.info("retried %d message(s)", len(retried))


def _embed_dispatcher(scheduler: BackgroundScheduler, database_url: str,
                      concurrency: int) -> None:
    """Run a dispatcher worker on a thread for as long as the scheduler runs."""
    from painpath.dispatch import Dispatcher

    global _embedded
    stop = threading.Event()
    running = _embedded = threading.Event()

    def on_event(event: SchedulerEvent) -> None:
        if event.code == EVENT_SCHEDULER_STARTED and not running.is_set():
            stop.clear()
            running.set()
            worker = Dispatcher(database_url=database_url, concurrency=concurrency,
                                name=f"scheduler:{threading.get_native_id()}")
            threading.Thread(target=_run_embedded, args=(worker, stop, running),
                             name="dispatcher", daemon=True).start()
        elif event.code == EVENT_SCHEDULER_SHUTDOWN:
            stop.set()

    scheduler.add_listener(on_event, EVENT_SCHEDULER_STARTED | EVENT_SCHEDULER_SHUTDOWN)


def _run_embedded(worker, stop: threading.Event, running: threading.Event) -> None:  # type: ignore[no-untyped-def]
    try:
        worker.run(stop)
    finally:
        running.clear()


def build_scheduler(database_url: str | None = None, *, dispatch: bool = True,
                    dispatch_concurrency: int = 8,
                    start_concurrency: int | None = None) -> BackgroundScheduler:
    """The scheduler with its jobs; with `dispatch`, an in-process dispatcher worker
    that starts and stops with it."""
    global _start_concurrency
    _start_concurrency = start_concurrency
    url = database_url or get_settings().database_url
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=url, tablename="apscheduler_jobs")},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
        timezone="UTC",
    )
    # the first sweep runs at once: after a restart, what fell due meanwhile starts now
    scheduler.add_job(sweep_due_checkins, "interval", seconds=SWEEP_SECONDS, id=SWEEP_JOB_ID,
                      replace_existing=True, next_run_time=datetime.now(timezone.utc))
    scheduler.add_job(repage_escalations, "interval", seconds=REPAGE_SECONDS, id=REPAGE_JOB_ID,
                      replace_existing=True)
    scheduler.add_job(retry_messages, "interval", seconds=RETRY_SECONDS, id=RETRY_JOB_ID,
                      replace_existing=True)
    scheduler.add_job(self_management_prompts, "interval", seconds=PROGRAMS_SECONDS,
                      id=PROGRAMS_JOB_ID, replace_existing=True)
    scheduler.add_job(screen_timeouts, "interval", seconds=SCREENS_SECONDS, id=SCREENS_JOB_ID,
                      replace_existing=True)
    if dispatch:
        _embed_dispatcher(scheduler, url, dispatch_concurrency)
    return scheduler


def run_forever(*, dispatch: bool = True, start_concurrency: int | None = None) -> None:
    """`painpath scheduler`: run until interrupted."""
    scheduler = build_scheduler(dispatch=dispatch, start_concurrency=start_concurrency)
    scheduler.start()
    logger.info("scheduler running (sweep every %d s, %s)", SWEEP_SECONDS,
                "dispatching in-process" if dispatch else "dispatch by separate workers")
    stop = threading.Event()
    # SIGINT and SIGTERM always stop it: a process started in the background by a
    # non-interactive shell inherits SIGINT *ignored*, and Python then never raises
    # KeyboardInterrupt (a scheduler once ran on for 48 minutes after Ctrl-C that way)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())
    try:
        stop.wait()
    finally:
        logger.info("scheduler stopping")
        scheduler.shutdown(wait=False)
