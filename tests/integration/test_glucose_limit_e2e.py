"""A diabetic patient's own blood-sugar limit reaches the red-flag classifier of the real
Rasa server over signed SMS (CLINICAL.md §1.0): the same reading is URGENT for a patient
whose diabetes plan says 200, and only a note for one judged by the default 300."""
from __future__ import annotations

import pytest

from tests.integration.test_sms_checkin_e2e import enroll, reply_to

pytestmark = pytest.mark.stack


def escalations(stack, patient_id: str) -> list[dict]:
    return stack.show(patient_id)["escalations"]


def test_a_reading_above_the_patients_own_limit_is_urgent_for_the_diabetes_prescriber(
        stack) -> None:
    own = enroll(stack, "+14155550241", hours_ago=30, baseline_pain="6",
                 glucose_limit="200")
    default = enroll(stack, "+14155550242", hours_ago=30, baseline_pain="6")
    reply_to(stack, "+14155550241", "my sugar was 250 this morning")
    reply_to(stack, "+14155550242", "my sugar was 250 this morning")
    [urgent] = escalations(stack, own)
    assert urgent["tier"] == "urgent"
    assert any("diabetes prescriber" in r for r in urgent["reasons"])
    assert [e["tier"] for e in escalations(stack, default)] == ["routine"]
