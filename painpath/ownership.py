"""Whose check-in, whose exercise: ids from a conversation are checked against it.

The action server gets check-in and exercise-session ids back from Rasa's tracker
(slots, entities). Rasa only ever holds ids our own actions put there, but the
tracker crosses a network hop: an id is used only when the row belongs to the
conversation's patient (the Rasa conversation id is the patient id, DESIGN.md).
"""
from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from painpath.models import CheckIn, ExerciseSession

logger = logging.getLogger(__name__)


class NotThePatients(PermissionError):
    """A check-in or exercise id that is not the conversation's patient's."""


def checkin_of(session: Session, checkin_id: int, patient_id: str) -> CheckIn:
    """Check-in `checkin_id`, provided it is `patient_id`'s.

    Raises:
        NotThePatients: no such check-in, or another patient's (the two are not
            told apart, so the answer says nothing about other patients' ids).
    """
    checkin = session.get(CheckIn, checkin_id)
    if checkin is None or checkin.patient_id != patient_id:
        logger.warning("refused check-in %s for patient %s: not theirs", checkin_id, patient_id)
        raise NotThePatients(f"check-in {checkin_id} is not patient {patient_id}'s")
    return checkin


def exercise_of(session: Session, session_id: int, patient_id: str) -> ExerciseSession:
    """Exercise session `session_id`, provided it is `patient_id`'s (else NotThePatients)."""
    row = session.get(ExerciseSession, session_id)
    if row is None or row.patient_id != patient_id:
        logger.warning("refused exercise session %s for patient %s: not theirs",
                       session_id, patient_id)
        raise NotThePatients(f"exercise session {session_id} is not patient {patient_id}'s")
    return row


def own_checkin_id(session: Session, checkin_id: int | None, patient_id: str) -> int | None:
    """`checkin_id` when it is `patient_id`'s; None (logged) otherwise."""
    if checkin_id is None:
        return None
    try:
        return checkin_of(session, checkin_id, patient_id).id
    except NotThePatients:
        return None


def own_exercise_id(session: Session, session_id: int | None, patient_id: str) -> int | None:
    """`session_id` when it is `patient_id`'s exercise session; None (logged) otherwise."""
    if session_id is None:
        return None
    try:
        return exercise_of(session, session_id, patient_id).id
    except NotThePatients:
        return None
