"""Asynchronous jobs: RQ carries job ids to worker processes; our JobRecord in Redis (see
store/jobs.py) is what clients see. The worker never imports FastAPI."""
