"""A failing torch.compile (no C++ compiler, an inductor error) falls back to the eager kernel."""

from __future__ import annotations

import warnings

import pytest
import torch

from ranklist import compiling, ranked_list_loss


def _broken_compile(fn, **kwargs):
    def compiled(*args, **kw):
        raise RuntimeError("InductorError: CppCompileError: C++ compile error\nno compiler found")

    return compiled


def test_failed_compile_warns_once_and_gives_the_eager_numbers(monkeypatch):
    g = torch.Generator().manual_seed(0)
    emb, labels = torch.randn(30, 8, generator=g), torch.randint(0, 4, (30,), generator=g)
    want = ranked_list_loss(emb, labels, compile=False)
    monkeypatch.setattr(compiling, "_CACHE", {})
    monkeypatch.setattr(torch, "compile", _broken_compile)
    with pytest.warns(
        RuntimeWarning,
        match=r"torch.compile of block_terms failed, using the eager version "
        r"\(RuntimeError: InductorError: CppCompileError",
    ):
        got = ranked_list_loss(emb, labels, compile=True)
    torch.testing.assert_close(got, want)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the fallback is for good: no second warning, no retry
        torch.testing.assert_close(ranked_list_loss(emb, labels, compile=True), want)


def test_errors_of_the_function_itself_keep_their_type():
    def fn(x):
        raise ZeroDivisionError("a real bug")

    wrapped = compiling._with_eager_fallback(fn, fn)
    with (
        pytest.warns(RuntimeWarning, match="torch.compile of fn failed"),
        pytest.raises(ZeroDivisionError, match="a real bug"),
    ):
        wrapped(1)


def test_torch_compile_refusing_outright_also_falls_back(monkeypatch):
    def refuse(fn, **kwargs):
        raise RuntimeError("Dynamo is not supported on this Python")

    monkeypatch.setattr(compiling, "_CACHE", {})
    monkeypatch.setattr(torch, "compile", refuse)
    emb, labels = torch.randn(6, 3), torch.tensor([0, 0, 1, 1, 2, 2])
    with pytest.warns(RuntimeWarning, match="torch.compile of block_terms failed.*Dynamo is not supported"):
        got = ranked_list_loss(emb, labels, compile=True)
    torch.testing.assert_close(got, ranked_list_loss(emb, labels, compile=False))
