"""A real SMTP server for the mail tests: aiosmtpd (PyPI) on a loopback port, storing each
message it accepts as one `.eml` file (written under a temporary name, then renamed, so a
reader never sees half a message) in a folder the tests read.

AUTH PLAIN/LOGIN is offered without TLS (loopback only) and accepts one user and password, so
the adapter's credentials are exercised; a client that does not authenticate may send too.

Usage: python smtp_sink.py HOST PORT FOLDER USER PASSWORD
"""

import asyncio
import os
import signal
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Store:
    def __init__(self, folder):
        self.folder = folder
        os.makedirs(folder, exist_ok=True)

    async def handle_DATA(self, server, session, envelope):
        name = f"{time.time_ns()}-{os.getpid()}"
        temporary = os.path.join(self.folder, f".{name}.tmp")
        with open(temporary, "wb") as out:
            out.write(envelope.original_content or envelope.content)
        os.rename(temporary, os.path.join(self.folder, f"{name}.eml"))
        return "250 Message accepted for delivery"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user and auth_data.password.decode() == password:
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    return check


def main():
    host, port, folder, user, password = sys.argv[1:6]
    controller = Controller(
        Store(folder),
        hostname=host,
        port=int(port),
        authenticator=authenticator(user, password),
        auth_require_tls=False,
        auth_required=False,
    )
    controller.start()
    print(f"smtp sink on {host}:{port} storing into {folder}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.run_until_complete(stop.wait())
    controller.stop()


if __name__ == "__main__":
    main()
