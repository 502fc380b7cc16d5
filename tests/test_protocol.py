"""The wire format between grader and runner (autograder/protocol.py)."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch

from autograder import protocol


def test_round_trip_and_no_pickles():
    blobs: list[bytes] = []
    value = (
        torch.arange(6.0).reshape(2, 3),
        torch.ones(2, dtype=torch.bfloat16),
        np.int64(3),
        2.5,
        None,
        [True, "x"],
        {"k": np.zeros(2)},
    )
    back = protocol.decode(protocol.encode(value, blobs), blobs)
    assert torch.equal(back[0], value[0]) and back[1].dtype == torch.bfloat16
    assert back[2] == 3 and back[3:6] == (2.5, None, [True, "x"])
    assert np.array_equal(back[6]["k"], np.zeros(2))
    buffer = io.BytesIO()
    np.save(buffer, np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(protocol.ProtocolError):
        protocol.decode({"t": "ndarray", "b": 0}, [buffer.getvalue()])

    class Sneaky(int):
        def __eq__(self, other):
            return True

    assert type(protocol.encode(Sneaky(5), [])) is int
    with pytest.raises(protocol.ProtocolError, match="not a tensor"):
        protocol.encode(object(), [])


def test_messages_over_pipes_and_caps(monkeypatch):
    r, w = os.pipe()
    receiving, sending = protocol.pipe_connection(r, w)
    blobs: list[bytes] = []
    spec = protocol.encode(torch.arange(4), blobs)
    protocol.send(sending, {"id": 1, "result": spec}, blobs)
    header, got = protocol.receive(receiving, timeout=5)
    assert header["id"] == 1 and torch.equal(
        protocol.decode(header["result"], got), torch.arange(4)
    )
    with pytest.raises(protocol.Timeout):
        protocol.receive(receiving, timeout=0.05)
    monkeypatch.setattr(protocol, "MAX_HEADER", 64)
    protocol.send(sending, {"junk": "x" * 1000})
    with pytest.raises(protocol.ProtocolError, match="unreadable message"):
        protocol.receive(receiving, timeout=5)
    sending.close()
    receiving.close()


def test_closed_pipe():
    r, w = os.pipe()
    receiving, sending = protocol.pipe_connection(r, w)
    sending.close()
    with pytest.raises(protocol.Closed):
        protocol.receive(receiving, timeout=5)
    receiving.close()
