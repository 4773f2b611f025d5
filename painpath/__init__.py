"""PainPath core: configuration, storage, clinical rules, messaging, CLI.

Plain Python with no Rasa imports, so it is tested without a server.
"""
