"""Linear: the packed oneDNN GEMM equals F.linear (float64 as the oracle), for any row count."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from density_nb.method.arch import Arch
from density_nb.method.linear import Linear, packing_enabled


@pytest.mark.parametrize("rows", [0, 1, 7, 33, 130, 517])
def test_packed_matches_float64(rows):
    gen = torch.Generator().manual_seed(rows)
    w1, w2 = torch.randn(48, 40, generator=gen), torch.randn(24, 40, generator=gen)
    b2 = torch.randn(24, generator=gen)
    lin = Linear(w1, w2, biases=(None, b2))
    assert lin.packed == packing_enabled(w1)
    x = torch.randn(rows, 40, generator=gen)
    y1, y2 = lin.split(x)
    assert y1.shape == (rows, 48) and y2.shape == (rows, 24)
    exact = torch.cat([F.linear(x.double(), w1.double()), F.linear(x.double(), w2.double(), b2.double())], dim=-1)
    assert torch.allclose(lin(x).double(), exact, rtol=1e-5, atol=1e-5)
    assert torch.equal(torch.cat([y1, y2], dim=-1), lin(x))
    with pytest.raises((ValueError, RuntimeError), match=r"features|shapes"):
        lin(torch.randn(2, 41))
    x3 = torch.randn(3, rows, 40, generator=gen)  # leading dims are kept
    assert torch.allclose(
        lin(x3).double(),
        torch.cat([F.linear(x3.double(), w1.double()), F.linear(x3.double(), w2.double(), b2.double())], -1),
        rtol=1e-5,
        atol=1e-5,
    )


def test_switch_off_and_other_dtypes(monkeypatch):
    w = torch.randn(8, 4)
    monkeypatch.setenv("DENSITY_NB_ONEDNN", "0")
    assert not Linear(w).packed
    monkeypatch.delenv("DENSITY_NB_ONEDNN")
    assert not Linear(w.bfloat16()).packed and not Linear(w.double()).packed


def test_arch_is_built_once_and_rebuilt_after_an_edit(tiny_llama):
    model = tiny_llama.original_model
    arch = Arch.of(model)
    assert Arch.of(model) is arch
    weight = model.model.layers[0].mlp.down_proj.weight
    with torch.no_grad():
        weight.mul_(2)  # an in-place edit bumps the version counter: the packed copy is stale
    try:
        fresh = Arch.of(model)
        assert fresh is not arch
        x = torch.randn(5, weight.shape[1])
        assert torch.allclose(fresh.layers[0].down(x), F.linear(x, weight), rtol=1e-5, atol=1e-5)
    finally:
        with torch.no_grad():
            weight.div_(2)
    assert Arch.of(model) is not fresh
    Arch.forget(model)


def test_falls_back_where_torch_lacks_the_private_ops(monkeypatch):
    """A torch without oneDNN's private linear ops (a future release) runs F.linear, same numbers."""
    monkeypatch.setattr("density_nb.method.linear.ONEDNN_OPS", ("_no_such_op_in_any_torch",))
    gen = torch.Generator().manual_seed(0)
    w, b, x = torch.randn(24, 40, generator=gen), torch.randn(24, generator=gen), torch.randn(5, 40, generator=gen)
    lin = Linear(w, biases=(b,))
    assert not lin.packed
    assert torch.equal(lin(x), F.linear(x, w, b))
