"""Use cases: one function per thing a client can do, built from the store and the engine.
The API layer calls these; they know nothing of HTTP."""
