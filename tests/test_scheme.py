"""neuroreg.losses.scheme: hypercoil's LossScheme / LossApply / LossArgument on RegularizationList. hypercoil's
own scheme test translated, then routing, nesting, names, joint mode, compile and bad input; and every module of
the first half of issue 19 compiled as one graph (fullgraph) with eager values and gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch._dynamo.testing

import neuroreg as nr
from neuroreg.losses.scheme import unpack_or_noop
from tests.registry import make_params


def parcellation(seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(4, 10, generator=generator, dtype=torch.float64), dim=-2)


# --- hypercoil's tests/loss/test_scheme.py (compactness is the other half's; smoothness stands in) --------
def test_loss_scheme() -> None:
    weight = parcellation().requires_grad_()
    entropy = nr.EntropyLoss(nu=0.2, name="Entropy")
    equilibrium = nr.EquilibriumLoss(nu=20, name="Equilibrium")
    smoothness = nr.SmoothnessLoss(nu=2, name="Smoothness")
    loss = nr.LossScheme((entropy, equilibrium, smoothness), apply=lambda arg: arg.X)

    def ref(X):
        return entropy(X) + equilibrium(X) + smoothness(X)

    expected = ref(weight)
    (g_ref,) = torch.autograd.grad(expected, weight)
    out = torch.compile(loss, backend="aot_eager")(nr.LossArgument(X=weight))
    (g_out,) = torch.autograd.grad(out, weight)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(g_out, g_ref)
    meta = loss.last_values()
    for s in "Smoothness", "Equilibrium", "Entropy":
        assert s in meta


# --- routing ------------------------------------------------------------------------------------------------
def test_named_arguments_route_to_losses_by_their_input_names() -> None:
    W, Y = parcellation(), parcellation(1)
    scheme = nr.LossScheme([nr.EntropyLoss(axis=0, name="h"), nr.MSELoss(Lambda=3.0, name="mse")])
    total = scheme(X=W, Y=W, Y_hat=Y)
    h = float(nr.functional.entropy(W, axis=0).mean())
    mse = float(((W - Y) ** 2).mean())
    assert float(total) == pytest.approx(h + 3.0 * mse)
    assert scheme.last_values() == pytest.approx({"h": h, "mse": 3.0 * mse})


def test_selectors_pick_model_and_data_and_members_nest() -> None:
    W, X = parcellation(), torch.randn(10, 30, dtype=torch.float64)
    inner = nr.LossScheme(
        [nr.EntropyLoss(axis=0, name="h"), nr.EquilibriumLoss(name="eq")], apply=lambda arg: arg.model, Lambda=0.5
    )
    scheme = nr.LossScheme(
        [
            inner,
            nr.LossApply(nr.SmoothnessLoss(name="smooth"), apply=lambda arg: arg.model @ arg.data),
            nr.LossApply(nr.MSELoss(name="mse"), apply=lambda arg: nr.UnpackingLossArgument(Y=arg.model, Y_hat=0 * W)),
        ]
    )
    total = scheme(model=W, data=X)
    h = nr.functional.entropy(W, axis=0).mean()
    eq = nr.functional.equilibrium(W).square().mean()
    smooth = nr.functional.smoothness(W @ X).abs().sum()
    mse = W.square().mean()
    torch.testing.assert_close(total, 0.5 * (h + eq) + smooth + mse)
    values = scheme.last_values()
    assert set(values) == {"h", "eq", "smooth", "mse"}
    assert values["smooth"] == pytest.approx(float(smooth))


def test_an_unpacking_argument_reaches_a_nested_scheme_by_name() -> None:
    # The inner scheme is called as inner(X=W): its default selector makes that LossArgument(X=W), which its
    # entropy loss reads by its input name.
    W = parcellation()
    inner = nr.LossScheme([nr.EntropyLoss(axis=0, name="h")])
    outer = nr.LossScheme([inner], apply=lambda arg: nr.UnpackingLossArgument(X=arg.model))
    w = W.numpy()
    expected = -(w * np.log(w)).sum(0).mean()
    assert float(outer(nr.LossArgument(model=W))) == pytest.approx(expected, rel=1e-12)


def test_positional_arguments_and_the_default_selector() -> None:
    assert unpack_or_noop(1) == 1 and unpack_or_noop(1, 2) == (1, 2)
    W, Y = parcellation(), parcellation(1)
    scheme = nr.LossScheme([nr.MSELoss(), nr.LossApply(nr.HingeLoss(), apply=lambda y, y_hat: (y_hat, y))])
    expected = ((W - Y) ** 2).mean() + torch.clamp(1 - W * Y, min=0).sum()
    torch.testing.assert_close(scheme(W, Y), expected)


def test_held_parameter_members_are_called_without_inputs() -> None:
    (logits,) = make_params((4, 10))
    X = torch.randn(10, 5, dtype=torch.float64)
    scheme = nr.LossScheme(
        [nr.EntropyLogitLoss(logits, axis=0, name="h"), nr.LossApply(nr.SmoothnessLoss(name="s"), lambda a: a.data)]
    )
    total = scheme(data=X)
    torch.testing.assert_close(
        total, nr.functional.entropy_logit(logits, axis=0).mean() + nr.functional.smoothness(X).abs().sum()
    )
    assert list(scheme.params) == [logits]
    total.backward()
    assert logits.grad is not None


def test_joint_mode_and_lambda_of_a_scheme_of_held_parameters() -> None:
    (W,) = make_params((3, 6))
    scheme = nr.LossScheme([nr.EntropyLogitLoss(W, Lambda=2.0), nr.L2(W, squared=True)], Lambda=0.5)
    expected = torch.autograd.grad(scheme(), W)[0]
    W.grad = torch.zeros_like(W)
    scheme.accumulate_grad()
    torch.testing.assert_close(W.grad, expected)
    torch.testing.assert_close(
        scheme().detach(),
        0.5 * (2.0 * nr.functional.entropy_logit(W.detach(), keepdims=False).mean() + W.detach().square().sum()),
    )


def test_loss_apply_takes_its_losss_name_and_repr_shows_the_selector() -> None:
    entropy = nr.EntropyLoss(name="entropy")
    applied = nr.LossApply(entropy, apply=unpack_or_noop)
    assert applied.name == "entropy" and applied.loss is entropy
    scheme = nr.LossScheme([applied, nr.LossApply(nr.EquilibriumLoss(name="eq"), name="selected-eq")])
    scheme(parcellation())
    assert set(scheme.last_values()) == {"entropy", "eq"}
    assert "apply=" in repr(scheme) and scheme.loss == (scheme[0], scheme[1])


def test_addition_concatenates_members() -> None:
    a = nr.LossScheme([nr.EntropyLoss(name="a")])
    b = nr.LossScheme([nr.EquilibriumLoss(name="b")])
    both = a + b
    assert isinstance(both, nr.LossScheme) and [m.name for m in both] == ["a", "b"] and len(both) == 2
    W = parcellation()
    torch.testing.assert_close(both(W), a(W) + b(W))


def test_loss_argument_mapping_helpers_are_hypercoils() -> None:
    arg = nr.LossArgument(X=1, Y=2, Z=3)
    assert arg.X == 1 and arg["Y"] == 2 and len(arg) == 3 and list(arg) == ["X", "Y", "Z"]
    assert dict(arg + nr.LossArgument(Y=5)) == {"X": 1, "Y": 5, "Z": 3}
    assert dict(nr.LossArgument.add(arg, W=0)) == {"X": 1, "Y": 2, "Z": 3, "W": 0}
    assert dict(nr.LossArgument.all_except(arg, "X", "Z")) == {"Y": 2}
    assert dict(nr.LossArgument.replaced(arg, X=7, Y=None)) == {"X": 7, "Y": 2, "Z": 3}
    assert dict(nr.LossArgument.swap(arg, "Z", W=4)) == {"X": 1, "Y": 2, "W": 4}
    assert arg == {"X": 1, "Y": 2, "Z": 3} and "X" in arg
    assert arg != {"X": 1, "Y": 2} and arg != nr.LossArgument(X=1, Y=2, Z=4) and arg != [("X", 1)]
    with pytest.raises(AttributeError, match="read-only"):
        arg.X = 2


def test_compiled_scheme_does_not_recompile_when_lambda_changes() -> None:
    torch._dynamo.reset()
    scheme = nr.LossScheme([nr.EntropyLogitLoss(), nr.LossApply(nr.EquilibriumLogitLoss(), apply=lambda x: x.T)])
    counter = torch._dynamo.testing.CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(scheme, backend=counter)
    X = torch.randn(5, 7)
    torch.testing.assert_close(compiled(X), scheme(X))
    frames = counter.frame_count
    scheme[0].Lambda = 3.0
    scheme.Lambda = 0.5
    torch.testing.assert_close(compiled(X), scheme(X))
    assert counter.frame_count == frames


COMPILE_X, COMPILE_Y = torch.randn(2, 4, 6, generator=torch.Generator().manual_seed(11))
COMPILE_CASES = {
    "MSELoss": (lambda: nr.MSELoss(), 2),
    "NormedLoss": (lambda: nr.NormedLoss(p=1, axis=-1), 1),
    "ConstraintViolationLoss": (lambda: nr.ConstraintViolationLoss(constraints=(lambda x: x - 0.5,)), 1),
    "UnilateralLoss": (lambda: nr.UnilateralLoss(), 1),
    "HingeLoss": (lambda: nr.HingeLoss(), 2),
    "BimodalSymmetricLoss": (lambda: nr.BimodalSymmetricLoss(modes=(-1, 1)), 1),
    "GramLogDeterminantLoss": (lambda: nr.GramLogDeterminantLoss(psi=0.1), 1),
    "GramDeterminantLoss": (lambda: nr.GramDeterminantLoss(op=nr.functional.linear_kernel, psi=1.0), 1),
    "EntropyLogitLoss": (lambda: nr.EntropyLogitLoss(axis=0), 1),
    "KLDivergenceLogitLoss": (lambda: nr.KLDivergenceLogitLoss(), 2),
    "BregmanDivergenceLoss": (lambda: nr.BregmanDivergenceLoss(f=lambda v: v.exp().sum(), f_dim=1), 2),
    "BregmanDivergenceLogitLoss": (lambda: nr.BregmanDivergenceLogitLoss(f=lambda v: v.square().sum(), f_dim=2), 2),
}


@pytest.mark.parametrize("case", list(COMPILE_CASES))
def test_losses_compile_to_one_graph_with_eager_values_and_gradients(case) -> None:
    torch._dynamo.reset()
    build, n_inputs = COMPILE_CASES[case]
    loss = build()
    counter = torch._dynamo.testing.CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(loss, backend=counter, fullgraph=True)  # fullgraph: a graph break is an error
    inputs = [t.clone().requires_grad_() for t in (COMPILE_X, COMPILE_Y)[:n_inputs]]
    value = compiled(*inputs)
    grads = torch.autograd.grad(value, inputs)
    expected_inputs = [t.detach().clone().requires_grad_() for t in inputs]
    expected = loss(*expected_inputs)
    torch.testing.assert_close(value, expected)
    for grad, expected_grad in zip(grads, torch.autograd.grad(expected, expected_inputs)):
        torch.testing.assert_close(grad, expected_grad)
    frames = counter.frame_count
    loss.Lambda = 2.5
    torch.testing.assert_close(compiled(*inputs), loss(*inputs))
    assert counter.frame_count == frames, "changing Lambda recompiled"


# --- bad input -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: nr.LossScheme([nr.EntropyLoss()])(X=parcellation(), Xs=1), ValueError, r"\['Xs'\], which no member"),
        (lambda: nr.LossScheme([nr.MSELoss(name="m")])(Y=parcellation()), ValueError, "m takes the argument 'Y_hat'"),
        (lambda: nr.LossScheme([nr.EntropyLoss()])(parcellation(), X=1), TypeError, "by name or by position"),
        (lambda: nr.LossScheme([lambda x: x]), TypeError, r"regularizations\[0\] must be a neuroreg regularization"),
        (lambda: nr.LossScheme([nr.EntropyLoss()], apply=3), TypeError, "apply must be callable"),
        (lambda: nr.LossApply(torch.sum), TypeError, "loss must be a neuroreg regularization"),
        (lambda: nr.LossApply(nr.EntropyLoss(), apply="X"), TypeError, "apply must be callable"),
        (lambda: nr.LossArgument(X=1).Y, AttributeError, r"no argument 'Y'; it has \['X'\]"),
        (
            lambda: nr.LossScheme([nr.LossApply(nr.EntropyLoss(name="e")), nr.EntropyLoss(name="e")]),
            ValueError,
            "named 'e'",
        ),
    ],
)
def test_bad_input_is_a_clear_error(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()


def test_parity_with_hypercoil() -> None:
    hc = pytest.importorskip("hypercoil.loss")
    jax = pytest.importorskip("jax")
    W = parcellation().float()
    w = jax.numpy.asarray(W.numpy())
    theirs, meta = hc.LossScheme(
        (hc.EntropyLoss(nu=0.2, axis=0), hc.EquilibriumLoss(nu=20)), apply=lambda arg: arg.X
    )(hc.LossArgument(X=w), key=jax.random.PRNGKey(0))
    ours = nr.LossScheme(
        (nr.EntropyLoss(nu=0.2, axis=0, name="Entropy"), nr.EquilibriumLoss(nu=20, name="Equilibrium")),
        apply=lambda arg: arg.X,
    )
    assert float(ours(nr.LossArgument(X=W))) == pytest.approx(float(theirs), rel=1e-5)
    for name, value in ours.last_values().items():
        assert value == pytest.approx(float(meta[name].value), rel=1e-5)
