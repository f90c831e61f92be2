"""Serve models written with ``pyro.sample``: a Pyro effect handler that routes sites through PPX.

Inside ``PyroToPPX`` every ``pyro.sample`` site becomes ``ppx.sample`` (latent)
or ``ppx.observe`` (``obs=`` given), named by the Pyro site name, so the
engine controls a Pyro model exactly as it controls one written with ``ppx``.
"""

from __future__ import annotations

from pyro.poutine.messenger import Messenger

from ppx import runtime


class PyroToPPX(Messenger):
    """Turns Pyro sample sites into PPX sample and observe calls."""

    def _pyro_sample(self, msg: dict) -> None:
        if msg.get("done"):
            return
        if msg["is_observed"]:
            runtime.observe(msg["fn"], msg["value"], name=msg["name"])
        else:
            msg["value"] = runtime.sample(msg["fn"], name=msg["name"])
        msg["done"] = True
