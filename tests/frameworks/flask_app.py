"""Flask 3, served by gunicorn (which takes drover's socket through LISTEN_FDS)."""
import os
import time

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return {"pid": os.getpid(), "server": "flask"}


@app.get("/slow")
def slow():
    time.sleep(0.2)
    return {"pid": os.getpid(), "server": "flask", "slow": True}
