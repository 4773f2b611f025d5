"""The care team's web app and the page that hosts the patient web chat.

Run with ``uvicorn web.app:create_app --factory``.
"""
