"""A raw pyzmq REP echo server: the floor any REQ/REP protocol on this machine can reach."""

from __future__ import annotations

import argparse

import zmq


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    args = parser.parse_args()
    socket = zmq.Context.instance().socket(zmq.REP)
    socket.bind(args.address)
    while True:
        socket.send(socket.recv())


if __name__ == "__main__":
    main()
