"""PHQ-4 placement and scoring (CLINICAL.md §2.2, §5), the ASQ after a positive PHQ-2
(§2.4, DESIGN.md) and mood questions by secure chat link (§6)."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from painpath import checkins, mood, screening
from painpath.cli import main
from painpath.content import get_content
from painpath.db import new_session
from painpath.enrollment import EnrollmentRequest, enroll
from painpath.messaging import ConsoleGateway, set_gateway
from painpath.models import CheckIn, Clinic, Escalation, SafetyScreen

PHQ4 = ["phq_interest", "phq_down", "gad_nervous", "gad_worry"]


def _mood_keys(procedure: str) -> list[str]:
    return [cp.key for cp, items in get_content().plan(procedure, False)
            if set(PHQ4) <= set(items)]


def test_long_schedule_asks_phq4_first_and_about_four_weeks_in() -> None:
    assert _mood_keys("radiofrequency_ablation") == ["1d", "21d"]
    assert _mood_keys("scs_implant") == ["1d", "21d"]


def test_short_schedule_asks_phq4_first_and_last() -> None:
    assert _mood_keys("peripheral_nerve_block") == ["18h", "3d"]
    assert _mood_keys("medial_branch_block") == ["4h", "14d"]


def test_every_procedure_is_screened() -> None:
    for pid in get_content().procedures:
        assert _mood_keys(pid), pid


def test_phq2_and_gad2_scores() -> None:
    values = {"phq_interest": 1, "phq_down": 2, "gad_nervous": 0, "gad_worry": 2}
    assert mood.phq2_total(values) == 3 and mood.positive(3)
    assert mood.gad2_total(values) == 2 and not mood.positive(2)
    assert mood.phq2_total({"phq_interest": 3}) is None
    assert mood.asq_due(values) and not mood.asq_due({"phq_interest": 1, "phq_down": 1})


# --- in a check-in: ASQ after a positive PHQ-2, by the screening path -----------------



ASQ = ["asq_wished_dead", "asq_better_off_dead", "asq_thoughts", "asq_tried"]


@pytest.fixture
def checkin_id(clinic: str) -> int:
    """The first check-in of an ESI patient (it asks the PHQ-4), started."""
    set_gateway(ConsoleGateway())
    with new_session() as session, session.begin():
        patient = enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone="+14155550161", procedure="epidural_steroid_injection",
            procedure_at="2026-11-20T09:30:00-06:00", timezone="America/Chicago",
            name="Kim Ray", baseline_pain=6))
        checkin = checkins.next_checkin(session, patient.id)
        checkins.begin(session, checkin)
        return checkin.id


def _answer(checkin_id: int, item: str, text: str) -> tuple[checkins.Outcome, SafetyScreen | None]:
    with new_session() as session, session.begin():
        checkin = session.get(CheckIn, checkin_id)
        outcome = checkins.submit(session, checkin_id, item, text)
        asked = screening.ask_after_answer(session, checkin.patient_id, checkin_id, outcome)
        return outcome, asked


def _items(checkin_id: int) -> list[str]:
    with new_session() as session:
        return list(session.get(CheckIn, checkin_id).items)


def test_phq2_below_3_asks_no_asq(checkin_id: int) -> None:
    _answer(checkin_id, "phq_interest", "1")
    _answer(checkin_id, "phq_down", "several days")
    assert not set(ASQ) & set(_items(checkin_id))


def test_phq2_of_3_adds_the_asq_after_the_mood_items(checkin_id: int) -> None:
    _answer(checkin_id, "phq_interest", "2")
    _answer(checkin_id, "phq_down", "1")
    items = _items(checkin_id)
    assert items[items.index("gad_worry") + 1:][:4] == ASQ
    _answer(checkin_id, "phq_down", "1")  # answered again: not added twice
    assert _items(checkin_id).count("asq_tried") == 1


def test_asq_yes_is_a_crisis_and_asks_asq5_through_the_screening_path(checkin_id: int) -> None:
    _answer(checkin_id, "phq_interest", "3")
    _answer(checkin_id, "phq_down", "nearly every day")
    outcome, asked = _answer(checkin_id, "asq_wished_dead", "yes")
    assert outcome.stop_checkin and any("988" in r for r in outcome.replies)
    assert asked is not None and asked.screen_id == "asq5" and asked.flag_tier == "crisis"
    with new_session() as session:
        [esc] = session.execute(select(Escalation)).scalars().all()
        assert esc.tier == "crisis" and asked.escalation_id == esc.id
        patient_id = esc.patient_id
    with new_session() as session, session.begin():  # the existing ASQ item 5 rules follow
        turn = screening.answer(session, patient_id, "yes")
    assert turn.tier == "crisis" and "988" in turn.replies[0]
    with new_session() as session:
        assert "imminent" in session.get(Escalation, esc.id).reasons


def test_asq_tried_yes_is_urgent_and_a_clear_no_to_asq5_goes_on(checkin_id: int) -> None:
    _answer(checkin_id, "phq_interest", "2")
    _answer(checkin_id, "phq_down", "2")
    for item in ASQ[:3]:
        outcome, asked = _answer(checkin_id, item, "no")
        assert asked is None and not outcome.replies
    outcome, asked = _answer(checkin_id, "asq_tried", "yes")
    assert not outcome.stop_checkin and asked is not None and asked.interrupted == "checkin"
    assert "988" in asked.question  # 988 at once, with the question (CLINICAL.md §2.4)
    with new_session() as session, session.begin():
        turn = screening.answer(session, asked.patient_id, "no")
    assert turn.resume == "checkin"


# --- by secure chat link (CLINICAL.md §6) ----------------------------------------------

def _set_by_link(capsys: pytest.CaptureFixture[str], clinic: str, value: str) -> dict:
    assert main(["clinic", "set", "--clinic", clinic, "--mood-by-link", value, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_by_link_the_sms_carries_a_chat_link_instead_of_the_mood_items(
        capsys: pytest.CaptureFixture[str], clinic: str, checkin_id: int) -> None:
    with new_session() as session:
        assert checkins.ask_text(session, checkin_id, "phq_interest").startswith("Over the last")
    assert _set_by_link(capsys, clinic, "on")["mood_by_link"] == "on"
    with new_session() as session, session.begin():
        text = checkins.ask_text(session, checkin_id, "phq_interest", channel="twilio")
        assert "/chat/" in text and "bothered" not in text
        assert "/chat/" in checkins.ask_text(session, checkin_id, "asq_thoughts")
        assert "/chat/" not in checkins.ask_text(session, checkin_id, "pain_now")
        # in the secure chat itself the question is asked as written
        web = checkins.ask_text(session, checkin_id, "phq_interest", channel="web")
        assert web.startswith("Over the last 2 weeks")
        # "OK" in the chat is not an answer: the re-ask there is the whole question
        assert checkins.ask_text(session, checkin_id, "phq_interest", reask=True,
                                 channel="web") == web
    assert _set_by_link(capsys, clinic, "off")["mood_by_link"] == "off"
    with new_session() as session:
        assert session.execute(select(Clinic.mood_by_link)).scalar_one() is False
        assert "/chat/" not in checkins.ask_text(session, checkin_id, "phq_interest")


def test_protocol_show_says_where_the_phq4_sits(capsys: pytest.CaptureFixture[str],
                                                 clinic: str) -> None:
    assert main(["protocol", "show", "--clinic", clinic, "--procedure",
                 "peripheral_nerve_block", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["procedures"]["peripheral_nerve_block"]["phq4"] \
        == ["18h", "3d"]
    assert main(["protocol", "show", "--clinic", clinic, "--procedure",
                 "radiofrequency_ablation"]) == 0
    assert "1d [PHQ-4], 3d, 7d, 14d, 21d [PHQ-4], 42d" in capsys.readouterr().out
