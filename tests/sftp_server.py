"""A real SSH/SFTP server on the loopback interface for the tests that push to and pull from a DVC SSH remote.

Run as `python -m tests.sftp_server ROOT PORT_FILE CLIENT_PUBLIC_KEY`: it serves ROOT over SFTP to the
holder of the client key, writes the port it listens on to PORT_FILE, and runs until killed.
"""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import asyncssh


async def serve(root: Path, port_file: Path, client_key: Path) -> None:
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.listen("127.0.0.1", 0, server_host_keys=[host_key], authorized_client_keys=str(client_key),
                                   sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=str(root)),
                                   allow_scp=False)
    port = server.sockets[0].getsockname()[1]
    tmp = port_file.with_suffix(".partial")
    tmp.write_text(str(port))
    tmp.rename(port_file)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
