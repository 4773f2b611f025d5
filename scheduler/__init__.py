"""The scheduler process: decides *when* a patient is contacted (APScheduler)."""
