"""Write the blank English spaCy pipeline that Rasa's SpacyNLP loads (no download)."""
from pathlib import Path

import spacy

target = Path(__file__).resolve().parent.parent / "var" / "spacy" / "en_blank"
if not (target / "meta.json").exists():
    target.parent.mkdir(parents=True, exist_ok=True)
    spacy.blank("en").to_disk(target)
    print(f"wrote {target}")
