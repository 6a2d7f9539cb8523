"""The serving stage: one engine, loaded once, shared by every client over Wyoming and HTTP (app.py)."""
