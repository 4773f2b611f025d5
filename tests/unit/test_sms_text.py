"""SMS segments (painpath/sms_text.py): two GSM-7 segments hold 306 characters and
two UCS-2 segments 134; every limit in the code is that, as sent, and an echo of
the patient's words is shortened so the message still fits."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from painpath import content as content_mod
from painpath import programs
from painpath.sms_text import fit_echoes, fits, fold, is_gsm, overflow, segments, to_gsm


def test_two_gsm_segments_hold_306_characters_and_two_ucs2_segments_134() -> None:
    assert segments("a" * 160) == 1 and segments("a" * 161) == 2
    assert segments("a" * 306) == 2 and segments("a" * 307) == 3
    assert segments("[" * 153) == 2 and segments("[" * 154) == 3  # two septets each
    assert segments("á" * 70) == 1 and segments("á" * 134) == 2 and segments("á" * 135) == 3
    assert fits("a" * 306) and not fits("a" * 307) and not fits("a" * 310)
    assert fits("a" * 133 + "😀") is False  # an emoji is two UTF-16 units
    assert overflow("a" * 310) == 4 and overflow("a" * 300) == 0


def test_spanish_question_marks_are_gsm_but_most_accents_are_not() -> None:
    assert is_gsm("¿Qué? ¡Sí, señor! Ñandú") is False  # í and ú are not GSM-7
    assert is_gsm("¿Qué? ¡Señor!") is True  # ¿ ¡ é ñ Ñ are
    assert fits("¿Cómo está? " + "x" * 122) and not fits("¿Cómo está? " + "x" * 123)


def test_fold_keeps_the_patients_words_readable_in_gsm() -> None:
    assert fold("Caminar más 😀 “cada” día → 10 min") == 'Caminar mas "cada" dia -> 10 min'
    assert is_gsm(fold("ĉaŭ 你好 Đ"))


def test_an_echo_is_shortened_so_the_message_fits_and_our_words_stay() -> None:
    template = "Your plan: {goal}. I'll remind you on Sunday. Reply GOAL any time to change it."

    def render(echoes: dict[str, str]) -> str:
        return template.format(**echoes)

    assert fit_echoes(render, {"goal": "walk 10 min"}) == render({"goal": "walk 10 min"})
    long = fit_echoes(render, {"goal": "walk to the park " * 30})
    assert segments(to_gsm(long)) == 2 and long.endswith("Reply GOAL any time to change it.")
    assert "walk to the park walk" in long and "..." in long
    # one emoji would make it UCS-2 (134 characters for two segments): folded, not cut short
    spanish = fit_echoes(render, {"goal": "caminar al parque con mi nieta 😀 " * 5})
    assert fits(spanish) and is_gsm(to_gsm(spanish)) and spanish.count("caminar") >= 4


def _patched_yaml(monkeypatch: pytest.MonkeyPatch, name: str, change: Any) -> None:
    real = content_mod._load_yaml

    def patched(file: str):  # type: ignore[no-untyped-def]
        data = real(file)
        if file == name:
            change(data)
        return data

    monkeypatch.setattr(content_mod, "_load_yaml", patched)
    content_mod.get_messages.cache_clear()


@pytest.mark.parametrize("text", [
    "a" * 310,                                  # fits 320, not two GSM-7 segments
    "¿Cómo está? " + "Por favor responda. " * 7,  # 152 characters of UCS-2: three segments
])
def test_content_is_checked_against_two_segments_not_320_characters(
        monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    assert len(text) <= 320 and not fits(text)
    _patched_yaml(monkeypatch, "messages.yaml", lambda data: data.__setitem__("checkin_done", text))
    try:
        with pytest.raises(content_mod.ContentError, match="checkin_done"):
            content_mod.get_messages()
    finally:
        content_mod.get_messages.cache_clear()

    def question(data: dict[str, Any]) -> None:
        data["items"]["pain_now"]["reask"] = text

    _patched_yaml(monkeypatch, "questions.yaml", question)
    with pytest.raises(content_mod.ContentError, match="pain_now"):
        content_mod.load_content()


def test_exercise_content_is_checked_against_two_segments(tmp_path: Path) -> None:
    data = yaml.safe_load(programs.CONTENT.read_text(encoding="utf-8"))
    data["messages"]["exit_stop"] = "b" * 310
    path = tmp_path / "exercises.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(programs.ProgramContentError, match="exit_stop"):
        programs.load_programs(path)


def test_every_exercise_text_fits_two_segments_with_12_characters_per_placeholder() -> None:
    p = programs.load_programs()
    texts = [s.text for e in p.exercises.values() for s in e.steps]
    texts += [s.gentle or "" for e in p.exercises.values() for s in e.steps]
    texts += [s.restricted or "" for e in p.exercises.values() for s in e.steps]
    texts += [e.done for e in p.exercises.values()] + list(p.messages.values())
    for text in texts:
        sample = programs._PLACEHOLDER.sub("x" * 12, text)
        assert is_gsm(to_gsm(sample)) and segments(to_gsm(sample)) <= 2, text
