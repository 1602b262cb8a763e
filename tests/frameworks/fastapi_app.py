"""FastAPI, served by uvicorn (--fd 3) or by gunicorn's UvicornWorker."""
import asyncio
import os

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def index():
    return {"pid": os.getpid(), "server": "fastapi"}


@app.get("/slow")
async def slow():
    await asyncio.sleep(0.2)
    return {"pid": os.getpid(), "server": "fastapi", "slow": True}
