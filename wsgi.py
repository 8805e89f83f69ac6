"""WSGI entry point: ``gunicorn -c gunicorn.conf.py wsgi:app``."""

from council_app import create_app
from council_app.startup import run_or_exit

app = run_or_exit(create_app)
