"""CURVE authentication for PPX over ZeroMQ: key files, and securing each end's socket.

``create_keys(DIR)`` (``ppx keys DIR``) writes one key pair for the engine and one
for the simulator::

    DIR/engine.key_secret        the engine's key pair: stays with the engine
    DIR/engine.key               the engine's public key
    DIR/simulator.key_secret     the simulator's key pair: stays with the simulator
    DIR/simulator.key            the simulator's public key: the engine checks it
    DIR/authorised/engine.key    the engines a simulator accepts (one ``*.key`` each)

An engine reads ``engine.key_secret`` and ``simulator.key``; a simulator reads
``simulator.key_secret`` and ``authorised/``, and refuses every engine whose public
key is not there. Both ends find the directory in the ``PPX_CURVE`` environment
variable when they are not given one, which is how simulators that an engine
launches itself inherit it. CURVE applies to tcp and ipc endpoints (an ipc socket
is guarded only by its file's permissions, an abstract one not at all); inproc
never leaves the process and stays plain.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Optional, Union

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

log = logging.getLogger(__name__)

ENVIRONMENT_VARIABLE = "PPX_CURVE"
ENGINE = "engine"
SIMULATOR = "simulator"
AUTHORISED = "authorised"
SECURED_TRANSPORTS = ("tcp://", "ipc://")

KeyDirectory = Union[str, "os.PathLike[str]"]


def secures(address: str) -> bool:
    """Whether CURVE applies to ``address`` (tcp and ipc; inproc stays in the process)."""
    return address.startswith(SECURED_TRANSPORTS)


def key_directory(curve: Optional[KeyDirectory] = None) -> Optional[Path]:
    """The key directory to use: ``curve`` itself, else ``$PPX_CURVE``; None when CURVE is off.

    An empty string turns CURVE off, given as ``curve`` or as ``PPX_CURVE`` (``PPX_CURVE= cmd``
    runs ``cmd`` without CURVE).
    """
    chosen = os.environ.get(ENVIRONMENT_VARIABLE) if curve is None else os.fspath(curve)
    return Path(chosen).absolute() if chosen else None


def create_keys(directory: KeyDirectory) -> Path:
    """Write fresh engine and simulator key pairs into ``directory`` (see the module docstring).

    Secret key files are readable by their owner only. Existing keys are never
    overwritten: ``ValueError`` names the first one found.
    """
    directory = Path(directory)
    targets = [f"{ENGINE}.key", f"{ENGINE}.key_secret", f"{SIMULATOR}.key", f"{SIMULATOR}.key_secret",
               f"{AUTHORISED}/{ENGINE}.key"]
    for target in targets:
        if (directory / target).exists():
            raise ValueError(f"{directory / target} already exists; keys are never overwritten "
                             f"(choose a new directory, or remove the old keys first)")
    (directory / AUTHORISED).mkdir(parents=True, exist_ok=True)
    # Keys are written in a private (0700) folder and moved into place, so a secret is
    # never readable by others, not even between its creation and its chmod.
    with tempfile.TemporaryDirectory(dir=directory, prefix=".ppx-keys-") as staging:
        for role in (ENGINE, SIMULATOR):
            _, secret = zmq.auth.create_certificates(staging, role)
            os.chmod(secret, 0o600)
        shutil.copyfile(Path(staging, f"{ENGINE}.key"), Path(staging, f"{AUTHORISED}-{ENGINE}.key"))
        os.replace(Path(staging, f"{AUTHORISED}-{ENGINE}.key"), directory / AUTHORISED / f"{ENGINE}.key")
        for name in targets[:4]:
            os.replace(Path(staging, name), directory / name)
    return directory


def _load_public(path: Path) -> bytes:
    if not path.is_file():
        raise ValueError(f"CURVE key directory {path.parent} has no {path.name} (create keys with `ppx keys DIR`)")
    try:
        public, _ = zmq.auth.load_certificate(path)
    except ValueError as err:
        raise ValueError(f"{path} is not a ZeroMQ CURVE certificate: {err}") from None
    return public


def _load_pair(path: Path) -> tuple[bytes, bytes]:
    public = _load_public(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ValueError(f"secret key file {path} is readable by other users (mode {mode:04o}); "
                         f"restrict it with `chmod 600 {path}`")
    _, secret = zmq.auth.load_certificate(path)
    if not secret:
        raise ValueError(f"{path} holds no secret key (a key pair is the .key_secret file from `ppx keys`)")
    return public, secret


class EngineKeys:
    """The engine's key pair and the simulator's public key, read once from a key directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.public, self.secret = _load_pair(directory / f"{ENGINE}.key_secret")
        self.simulator_public = _load_public(directory / f"{SIMULATOR}.key")

    def secure(self, socket: zmq.Socket) -> None:
        """Make ``socket`` a CURVE client that talks only to the simulator holding our expected key."""
        socket.curve_publickey = self.public
        socket.curve_secretkey = self.secret
        socket.curve_serverkey = self.simulator_public


def authorised_keys(directory: Path) -> tuple[Path, int]:
    """The folder of authorised engine keys and how many it holds, checked to be readable and not empty."""
    folder = directory / AUTHORISED
    try:
        count = len(zmq.auth.load_certificates(folder))
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read the authorised engine keys in {folder}: {err}") from None
    if count == 0:
        raise ValueError(f"{folder} holds no engine public keys (*.key), so every engine would be refused; "
                         f"create keys with `ppx keys DIR`, or copy the engine's engine.key there")
    return folder, count


def secure_simulator_socket(socket: zmq.Socket, directory: Path) -> ThreadAuthenticator:
    """Make ``socket`` a CURVE server that accepts only the engines in ``directory/authorised``.

    Returns the running authenticator, which must outlive the socket (stop it after
    closing the socket). It must be started before the socket binds: a CURVE server
    with no authenticator in its context accepts any client key.
    """
    public, secret = _load_pair(directory / f"{SIMULATOR}.key_secret")
    folder, count = authorised_keys(directory)
    authenticator = ThreadAuthenticator(socket.context, log=logging.getLogger(f"{__name__}.zap"))
    authenticator.start()
    authenticator.configure_curve(domain="*", location=folder)
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_server = True
    log.info("CURVE: accepting the %d engine key(s) in %s", count, folder)
    return authenticator


HANDSHAKE_FAILURES = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                      | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
"""The socket monitor events that say a peer was reached but the security handshake failed."""
UNEXPLAINED_FAILURES = 3
"""Handshake failures without details (a wrong server key gives these) that count as a refusal;
one alone may be a peer that died mid-handshake."""
_PROTOCOL_ERRORS = {getattr(zmq, name): name for name in dir(zmq) if name.startswith("PROTOCOL_ERROR_")}


def handshake_refusal(event: int, value: int, address: str, keys: Optional[EngineKeys],
                      unexplained: int) -> Optional[str]:
    """Why the simulator at ``address`` will never answer, given a handshake-failure monitor event.

    ``unexplained`` counts the detail-less failures so far, this one included; None
    while they may still be transient.
    """
    where = f"simulator at {address}"
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        if keys is None:
            return f"{where} refused the connection during authentication (ZAP status {value})"
        return (f"{where} refused the engine's CURVE key (ZAP status {value}): the simulator accepts only the "
                f"engine keys in its key directory's {AUTHORISED}/ folder; copy {keys.directory}/{ENGINE}.key "
                f"there, or give both ends the same key directory")
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH and keys is None:
            return (f"{where} requires CURVE authentication: connect with --curve DIR (or set "
                    f"{ENVIRONMENT_VARIABLE}=DIR), DIR holding the keys made by `ppx keys DIR`")
        if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
            return (f"{where} does not use CURVE authentication but this engine does (keys in "
                    f"{keys.directory}): start the simulator with --curve DIR (or {ENVIRONMENT_VARIABLE}=DIR), "
                    f"or connect without CURVE")
        return f"security handshake with the {where} failed: {_PROTOCOL_ERRORS.get(value, value)}"
    if unexplained < UNEXPLAINED_FAILURES:
        return None
    reason = os.strerror(value) if value > 0 else "no details"
    if keys is None:
        return (f"handshake with the {where} failed {unexplained} times ({reason}): it may require CURVE "
                f"authentication (connect with --curve DIR, or set {ENVIRONMENT_VARIABLE}=DIR)")
    return (f"CURVE handshake with the {where} failed {unexplained} times ({reason}): the simulator serves "
            f"with another key than {keys.directory}/{SIMULATOR}.key, or does not use CURVE")
