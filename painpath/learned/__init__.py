"""The learned layer of red-flag triage: static word embeddings and the recall model."""
