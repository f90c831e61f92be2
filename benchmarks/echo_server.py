"""A REP echo server: the floor any REQ/REP protocol on this machine can reach.

``--transport raw`` (the default) answers with bare pyzmq calls; ``--transport ppx``
answers through ``ppx.transport.Listener``, the socket layer the simulators serve
on, so that its cost can be told apart from the protocol's; ``--transport channel``
answers through the same listener with its local channel open (``ppx.channel``).
"""

from __future__ import annotations

import argparse

import zmq

from ppx.transport import Listener


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--transport", choices=("raw", "ppx", "channel"), default="raw")
    args = parser.parse_args()
    if args.transport != "raw":
        listener = Listener(args.address, channel=args.transport == "channel")
        while True:
            listener.reply(listener.receive())
    socket = zmq.Context.instance().socket(zmq.REP)
    socket.bind(args.address)
    while True:
        socket.send(socket.recv())


if __name__ == "__main__":
    main()
