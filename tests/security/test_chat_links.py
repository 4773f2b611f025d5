"""Web-chat links can be revoked and show nothing about the patient (security item 7).

A chat link is the patient's credential for the web chat. Cancelling the enrolment,
opting out (STOP) and deleting the patient must each make every link sent before
unusable, at once, whatever its age; and the link must not carry the patient id in
clear (its payload is readable base64)."""
from __future__ import annotations

import base64
import dataclasses
from datetime import timedelta
from typing import Iterator

import pytest
from fastapi.testclient import TestClient

from painpath import sms
from painpath.db import new_session
from painpath.enrollment import EnrollmentRequest, enroll
from painpath.models import utcnow
from painpath.privacy import delete_patient
from painpath.protocols import reschedule_patient
from painpath.settings import Settings, get_settings
from painpath.weblink import chat_url
from web.app import create_app

PHONE = "+14155550161"


@pytest.fixture
def settings(clinic: str) -> Settings:
    return dataclasses.replace(get_settings(), web_base_url="http://testserver")


@pytest.fixture
def web(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def patient_id(clinic: str) -> str:
    with new_session() as session, session.begin():
        patient = enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone=PHONE, procedure="facet_injection",
            procedure_at=utcnow() - timedelta(days=1), name="Lena Linkholder"))
        return patient.id


def link_path(settings: Settings, patient_id: str) -> str:
    return chat_url(patient_id, settings).removeprefix(settings.web_base_url)


def assert_link_works(web: TestClient, path: str) -> None:
    page = web.get(path)
    assert page.status_code == 200, page.text[:200]
    assert web.get(path + "/messages").status_code == 200


def assert_link_dead(web: TestClient, path: str) -> None:
    page = web.get(path)
    assert page.status_code in (403, 410), page.status_code
    assert 'id="messages"' not in page.text
    assert web.get(path + "/messages").status_code in (403, 410)
    assert web.post(path + "/messages", json={"text": "hello"}).status_code in (403, 410)


def test_the_link_does_not_carry_the_patient_id(settings: Settings, patient_id: str) -> None:
    token = link_path(settings, patient_id).removeprefix("/chat/")
    payload = token.split(".")[0]
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert patient_id not in token
    assert patient_id.encode() not in decoded
    assert PHONE.encode() not in decoded


def test_cancelling_the_enrolment_revokes_links_sent_before(
        web: TestClient, settings: Settings, patient_id: str) -> None:
    old = link_path(settings, patient_id)
    assert_link_works(web, old)
    with new_session() as session, session.begin():
        reschedule_patient(session, patient_id, cancel=True)
    assert_link_dead(web, old)
    page = web.get(old)
    assert page.status_code == 410 and "no longer works" in page.text


def test_opting_out_by_sms_revokes_links_sent_before(
        web: TestClient, settings: Settings, patient_id: str) -> None:
    old = link_path(settings, patient_id)
    assert_link_works(web, old)
    sms.route_inbound(PHONE, "STOP", "SM" + "1" * 32, 0)
    assert_link_dead(web, old)


def test_deleting_the_patient_revokes_links_sent_before(
        web: TestClient, settings: Settings, patient_id: str) -> None:
    old = link_path(settings, patient_id)
    assert_link_works(web, old)
    delete_patient(patient_id, via="cli")
    assert_link_dead(web, old)


def test_a_new_link_after_a_revocation_works_and_the_old_one_stays_dead(
        web: TestClient, settings: Settings, patient_id: str) -> None:
    old = link_path(settings, patient_id)
    with new_session() as session, session.begin():
        reschedule_patient(session, patient_id, cancel=True)
    new = link_path(settings, patient_id)
    assert new != old
    assert_link_works(web, new)
    assert_link_dead(web, old)


def test_links_of_another_patient_are_untouched(
        web: TestClient, settings: Settings, clinic: str, patient_id: str) -> None:
    with new_session() as session, session.begin():
        other = enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone="+14155550162", procedure="facet_injection",
            procedure_at=utcnow() - timedelta(days=1))).id
    theirs = link_path(settings, other)
    with new_session() as session, session.begin():
        reschedule_patient(session, patient_id, cancel=True)
    assert_link_works(web, theirs)
