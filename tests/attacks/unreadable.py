"""A notebook file that is not JSON."""

from attacks import FULL

STUDENT = "attack_unreadable"
DESERVED = dict.fromkeys(FULL, 0)


def build(ctx):
    (ctx.folder / "precision.ipynb").write_bytes(b'{"cells": [ {"cell_type": "code", \x00\xff')
    return None
