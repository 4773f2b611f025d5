"""One phone number enrolled at two clinics (security issue, item 2).

Inbound SMS is routed on the (To, From) pair: each clinic may have its own Twilio
number (`painpath clinic set --sms-number`), and its patients' texts leave from it.
STOP and START reach every enrolment of the number. A text that still matches
patients at more than one clinic (a number shared by clinics) is never guessed: it
joins no conversation, the sender gets a neutral reply, each clinic gets a task --
and a red flag in it still pages both care teams (a red flag is never dropped).
"""
from __future__ import annotations

import json
import secrets
from typing import Any, Iterator

import httpx
import pytest
from sqlalchemy import select

from painpath.cli import main
from painpath.db import new_session
from painpath.dispatch import drain
from painpath.enrollment import EnrollmentRequest, enroll, ensure_clinic
from painpath.messaging import set_gateway
from painpath.models import Clinic, Clinician, Enrollment, Escalation, Message, Patient
from painpath.settings import get_settings
from painpath.sms import route_inbound
from tests.fakes.fake_twilio import FakeTwilio, sign

A_NUMBER, B_NUMBER = "+14155550901", "+14155550902"  # each clinic's own Twilio number
PHONE = "+14155550911"  # one patient's phone, enrolled at both clinics
NURSE_A, NURSE_B = "+14155550921", "+14155550922"
RED_FLAG = "since lunch I cant feel my legs and I wet myself"


@pytest.fixture(scope="module")
def twilio() -> Iterator[FakeTwilio]:
    fake = FakeTwilio().start()
    yield fake
    fake.stop()


@pytest.fixture
def env(database_url: str, twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch) -> FakeTwilio:
    """The real twilio client, talking to the fake Twilio server."""
    for key, value in twilio.env().items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    set_gateway(None)
    with twilio._lock:
        twilio.messages.clear()
        twilio._by_to.clear()
    return twilio


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def add_clinic(slug: str, nurse_phone: str) -> None:
    with new_session() as session, session.begin():
        clinic = ensure_clinic(session, slug, f"Clinic {slug.upper()}", phone="+14155550990",
                               tz_name="America/Chicago")
        session.add(Clinician(clinic_id=clinic.id, name=f"Nurse {slug}", phone=nurse_phone,
                              role="nurse", on_call="primary"))


def add_patient(slug: str, name: str) -> str:
    with new_session() as session, session.begin():
        return enroll(session, EnrollmentRequest(
            clinic_slug=slug, phone=PHONE, procedure="epidural_steroid_injection",
            procedure_at="2026-11-20T09:30:00-06:00", name=name)).id


@pytest.fixture
def two_clinics(env: FakeTwilio) -> tuple[str, str]:
    """Clinics `a` and `b`, the same phone enrolled at both (b's the newer record);
    no clinic number configured (both send from TWILIO_FROM_NUMBER)."""
    add_clinic("a", NURSE_A)
    add_clinic("b", NURSE_B)
    return add_patient("a", "Ann Able"), add_patient("b", "Bob Baker")


@pytest.fixture
def own_numbers(env: FakeTwilio, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """The same, but each clinic has its own number (set before enrolment)."""
    for slug, nurse, number in (("a", NURSE_A, A_NUMBER), ("b", NURSE_B, B_NUMBER)):
        add_clinic(slug, nurse)
        code, _, err = cli(capsys, "clinic", "set", "--clinic", slug, "--sms-number", number)
        assert code == 0, err
    return add_patient("a", "Ann Able"), add_patient("b", "Bob Baker")


def sid() -> str:
    return "SM" + secrets.token_hex(16)


def inbound_rows(patient_id: str) -> list[Message]:
    with new_session() as session:
        return list(session.execute(select(Message).where(
            Message.patient_id == patient_id, Message.direction == "in")).scalars())


def tasks(patient_id: str, kind: str) -> list[Escalation]:
    with new_session() as session:
        return list(session.execute(select(Escalation).where(
            Escalation.patient_id == patient_id, Escalation.kind == kind)).scalars())


def opted_out(patient_id: str) -> bool:
    with new_session() as session:
        return session.get(Patient, patient_id).sms_opted_out


# ------------------------------------------------------------------ configuration


def test_clinic_set_sms_number_is_validated_and_unique(two_clinics: tuple[str, str],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "clinic", "set", "--clinic", "a", "--sms-number",
                       "(415) 555-0901", "--json")
    assert code == 0 and json.loads(out)["sms_number"] == A_NUMBER
    code, _, err = cli(capsys, "clinic", "set", "--clinic", "b", "--sms-number", "+1 555")
    assert code == 2 and "sms-number" in err
    code, _, err = cli(capsys, "clinic", "set", "--clinic", "b", "--sms-number", A_NUMBER)
    assert code == 2 and "already" in err and "'a'" in err
    code, out, _ = cli(capsys, "clinic", "set", "--clinic", "a", "--sms-number", "", "--json")
    assert code == 0 and json.loads(out)["sms_number"] is None


# ------------------------------------------------------------------ routing on (To, From)


def test_a_reply_goes_to_the_clinic_whose_number_it_was_sent_to(own_numbers: tuple[str, str]
                                                                ) -> None:
    pa, pb = own_numbers
    routed = route_inbound(PHONE, "my back is a bit sore today", sid(), to=A_NUMBER)
    assert routed.patient_id == pa and routed.forward_text == "my back is a bit sore today"
    routed = route_inbound(PHONE, "feeling better", sid(), to=B_NUMBER)
    assert routed.patient_id == pb
    assert [m.body for m in inbound_rows(pa)] == ["my back is a bit sore today"]
    assert [m.body for m in inbound_rows(pb)] == ["feeling better"]
    assert inbound_rows(pa)[0].to == A_NUMBER


def test_sms_leave_from_the_clinics_own_number(own_numbers: tuple[str, str],
                                               env: FakeTwilio) -> None:
    pa, pb = own_numbers
    with new_session() as session, session.begin():
        add_clinic("c", "+14155550923")
    with new_session() as session, session.begin():
        enroll(session, EnrollmentRequest(
            clinic_slug="c", phone="+14155550912", procedure="facet_injection",
            procedure_at="2026-11-20T09:30:00-06:00"))
    drain()  # the welcome messages
    senders = {(m.to, m.from_) for m in env.messages}
    assert (PHONE, A_NUMBER) in senders and (PHONE, B_NUMBER) in senders
    # a clinic without its own number sends from TWILIO_FROM_NUMBER
    assert ("+14155550912", env.from_number) in senders
    # a reply in A's conversation, and A's alert page, leave from A's number
    from painpath.escalation import raise_flag
    from painpath.sms import send_to_patient

    send_to_patient(pa, "Thanks, noted.")
    with new_session() as session, session.begin():
        raise_flag(session, pa, "emergency", ["chest pain"])
    drain()
    assert [m.from_ for m in env.sent_to(PHONE) if m.body == "Thanks, noted."] == [A_NUMBER]
    assert [m.from_ for m in env.sent_to(NURSE_A)] == [A_NUMBER]


def test_stop_and_start_reach_every_enrolment_of_the_number(own_numbers: tuple[str, str]
                                                            ) -> None:
    pa, pb = own_numbers
    route_inbound(PHONE, "STOP", sid(), to=A_NUMBER)
    assert opted_out(pa) and opted_out(pb)
    route_inbound(PHONE, "START", sid(), to=B_NUMBER)
    assert not opted_out(pa) and not opted_out(pb)


def test_a_text_to_a_shared_number_matching_two_clinics_is_not_guessed(
        two_clinics: tuple[str, str], env: FakeTwilio) -> None:
    pa, pb = two_clinics
    words = "when can I drive again"
    routed = route_inbound(PHONE, words, sid(), to=env.from_number)
    assert routed.patient_id is None and routed.forward_text is None
    assert inbound_rows(pa) == [] and inbound_rows(pb) == []
    with new_session() as session:
        row = session.execute(select(Message).where(Message.direction == "in")).scalar_one()
        assert row.patient_id is None and row.body == words  # kept for the record
    reply = [m for m in env.sent_to(PHONE) if "welcome" not in m.body.lower()]
    assert len(reply) == 1 and "could not match it to your care team" in reply[0].body
    assert "911" in reply[0].body and reply[0].from_ == env.from_number
    # each clinic has a task to call the patient; neither sees the other's message
    for pid in (pa, pb):
        [task] = tasks(pid, "unrouted_sms")
        assert task.status == "open" and words not in " ".join(task.reasons) + (task.text or "")
    route_inbound(PHONE, "can I shower tonight", sid(), to=env.from_number)
    assert len(tasks(pa, "unrouted_sms")) == 1  # one open task, not one per text


def test_a_red_flag_matching_two_clinics_pages_both_care_teams(
        two_clinics: tuple[str, str], env: FakeTwilio) -> None:
    pa, pb = two_clinics
    routed = route_inbound(PHONE, RED_FLAG, sid(), to=env.from_number)
    assert routed.patient_id is None  # not guessed: no conversation gets it
    told = env.wait_for_count(PHONE, 1)
    assert any("911" in m.body for m in told)
    assert env.wait_for_count(NURSE_A, 1) and env.wait_for_count(NURSE_B, 1)
    for pid in (pa, pb):
        [flag] = tasks(pid, "red_flag")
        assert flag.tier == "emergency" and flag.status == "open" and flag.text == RED_FLAG
        assert any("more than one clinic" in r for r in flag.reasons)


def test_a_maybe_red_flag_matching_two_clinics_is_escalated_not_dropped(
        two_clinics: tuple[str, str], env: FakeTwilio) -> None:
    """A message that would get a safety question: none can be asked outside a
    conversation, so it is escalated as an unanswered one would be."""
    pa, pb = two_clinics
    # a language PainPath cannot read always gets a safety question (painpath/screens.py)
    route_inbound(PHONE, "Chân tôi yếu quá, không đứng được", sid(), to=env.from_number)
    assert env.wait_for_count(NURSE_A, 1) and env.wait_for_count(NURSE_B, 1)
    for pid in (pa, pb):
        [flag] = tasks(pid, "red_flag")
        assert flag.status == "open" and flag.tier == "emergency"
        assert any("could not be asked" in r for r in flag.reasons)
    [told] = env.sent_to(PHONE)
    assert "alerted your care team" in told.body and "911" in told.body


def test_an_inactive_enrolment_elsewhere_does_not_make_a_text_ambiguous(
        two_clinics: tuple[str, str], env: FakeTwilio) -> None:
    pa, pb = two_clinics
    with new_session() as session, session.begin():
        for e in session.execute(select(Enrollment).where(Enrollment.patient_id == pa)).scalars():
            e.status = "completed"
    assert route_inbound(PHONE, "hello", sid(), to=env.from_number).patient_id == pb


def test_a_text_to_one_clinics_number_ignores_the_shared_one(
        two_clinics: tuple[str, str], capsys: pytest.CaptureFixture[str],
        env: FakeTwilio) -> None:
    pa, pb = two_clinics
    assert cli(capsys, "clinic", "set", "--clinic", "a", "--sms-number", A_NUMBER)[0] == 0
    # b still sends from the shared number: a text to it is b's, one to A_NUMBER is a's
    assert route_inbound(PHONE, "hello", sid(), to=env.from_number).patient_id == pb
    assert route_inbound(PHONE, "hello", sid(), to=A_NUMBER).patient_id == pa


# ------------------------------------------------------------------ through the real webhook


@pytest.mark.stack
def test_the_twilio_webhook_routes_on_the_to_number(stack: Any) -> None:
    """The Rasa channel passes Twilio's `To`: the reply lands in the conversation of
    the clinic that was texted, and the bot answers from that clinic's number."""
    phone, number = "+14155550913", "+14155550903"
    with new_session(stack.database_url) as session, session.begin():
        other = ensure_clinic(session, "routing-b", "Routing B Clinic", phone="+14155550990")
        other.sms_number = number
    mine = json.loads(stack.cli("enroll", "--clinic", "routing-b", "--phone", phone,
                                "--procedure", "facet_injection", "--procedure-at",
                                "2026-11-20T09:30:00-06:00", "--json").stdout)["id"]
    theirs = stack.cli("enroll", "--clinic", "e2e", "--phone", phone, "--procedure",
                       "facet_injection", "--procedure-at", "2026-11-21T09:30:00-06:00"
                       ).stdout.strip()
    params = {"From": phone, "To": number, "Body": "hello, how does this work?",
              "MessageSid": sid(), "AccountSid": stack.twilio.account_sid, "NumMedia": "0"}
    resp = httpx.post(stack.webhook_url, data=params, timeout=60, headers={
        "X-Twilio-Signature": sign(stack.twilio.auth_token, stack.webhook_url, params)})
    assert resp.status_code == 200
    inbound = [m for m in stack.show(mine)["messages"] if m["direction"] == "in"]
    assert [m["body"] for m in inbound] == ["hello, how does this work?"]
    assert not [m for m in stack.show(theirs)["messages"] if m["direction"] == "in"]
    stack.twilio.wait_for(lambda msgs: any(m.to == phone and m.from_ == number
                                           and "welcome" not in m.body.lower() for m in msgs))
