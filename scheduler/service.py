"""APScheduler with a persistent SQLAlchemy job store on PainPath's database.

One process owns the job store (APScheduler's FAQ). Jobs have explicit ids,
`replace_existing`, `coalesce` and a deliberate `misfire_grace_time`; they take
no state but reload everything from the database, so a restart loses nothing.
"""
from __future__ import annotations

import logging
import threading

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from painpath.settings import get_settings

logger = logging.getLogger(__name__)

SWEEP_JOB_ID = "sweep-due-checkins"
SWEEP_SECONDS = 30
REPAGE_JOB_ID = "repage-escalations"
REPAGE_SECONDS = 15
RETRY_JOB_ID = "retry-messages"
RETRY_SECONDS = 10


def sweep_due_checkins() -> None:
    """Job: start every due check-in (idempotent)."""
    from painpath.scheduling import start_due_checkins

    result = start_due_checkins()
    from painpath.scheduling import send_reminders

    reminded = send_reminders()
    if reminded:
        logger.info("sweep: reminded %d check-in(s)", len(reminded))
    if result.started or result.missed:
        logger.info("sweep: started %d, missed %d, deferred %d", len(result.started),
                    len(result.missed), len(result.deferred))


def repage_escalations() -> None:
    """Job: page the next level for late acknowledgements; tell overdue urgent patients."""
    from painpath.escalation import run_repage

    sent = run_repage()
    if sent:
        logger.info("re-paged: %d message(s)", len(sent))


def retry_messages() -> None:
    """Job: resend failed SMS whose backoff has passed (alerts included)."""
    from painpath.messaging import retry_due

    retried = retry_due()
    if retried:
        logger.info("retried %d message(s)", len(retried))


def build_scheduler(database_url: str | None = None) -> BackgroundScheduler:
    url = database_url or get_settings().database_url
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=url, tablename="apscheduler_jobs")},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
        timezone="UTC",
    )
    scheduler.add_job(sweep_due_checkins, "interval", seconds=SWEEP_SECONDS, id=SWEEP_JOB_ID,
                      replace_existing=True)
    scheduler.add_job(repage_escalations, "interval", seconds=REPAGE_SECONDS, id=REPAGE_JOB_ID,
                      replace_existing=True)
    scheduler.add_job(retry_messages, "interval", seconds=RETRY_SECONDS, id=RETRY_JOB_ID,
                      replace_existing=True)
    return scheduler


def run_forever() -> None:
    """`painpath scheduler`: run until interrupted."""
    scheduler = build_scheduler()
    scheduler.start()
    logger.info("scheduler running (sweep every %d s)", SWEEP_SECONDS)
    stop = threading.Event()
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        scheduler.shutdown(wait=False)
