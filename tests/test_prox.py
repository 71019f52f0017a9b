"""Proximal operators (``functional.prox``) against NumPy and their optimality conditions; the ``update=``
modes of L1, L2, WeightsDistance and DaleSignPenalty attached to optimizers (exact zeros, AdamW equality,
param-group and scheduler learning rates); their bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch import nn

import neuroreg as nr
from neuroreg.functional import (
    dale_sign_prox_,
    l1_prox_,
    squared_l2_decay_,
    squared_l2_prox_,
    weights_distance_l1_prox_,
    weights_distance_squared_l2_decay_,
    weights_distance_squared_l2_prox_,
)
from tests.neurotorch_support import import_neurotorch
from tests.protocol import make_batches, seeded_model
from tests.registry import make_params

SHAPES = ((6, 5), (7,), (2, 3, 4))


def soft_threshold(w: np.ndarray, t: float) -> np.ndarray:
    return np.sign(w) * np.maximum(np.abs(w) - t, 0.0)


def numpy_of(tensors) -> list:
    return [t.detach().numpy().copy() for t in tensors]


# --- the pure operators ----------------------------------------------------------------------------------------
finite = hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=5),
                    elements=st.floats(-10, 10, allow_nan=False, width=64))


@settings(max_examples=60, deadline=None)
@given(w=finite, t=st.floats(0, 5))
def test_l1_prox_is_numpys_soft_threshold(w: np.ndarray, t: float) -> None:
    tensor = torch.from_numpy(w.copy())
    l1_prox_([tensor], t)
    np.testing.assert_allclose(tensor.numpy(), soft_threshold(w, t), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_operators_with_one_step_per_tensor_and_mixed_dtypes_equal_numpy(dtype: torch.dtype) -> None:
    tensors = [p.detach().to(dtype) for p in make_params(*SHAPES, seed=3)] + [torch.randn(4, dtype=torch.float64)]
    refs = [torch.randn_like(t) for t in tensors]
    signs = [torch.randint(-1, 2, t.shape).to(t.dtype) for t in tensors]
    steps = [0.3, 0.05, 1.2, 0.7]
    tol = {"rtol": 1e-6, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}
    cases = [
        (l1_prox_, (), lambda w, r, s, t: soft_threshold(w, t)),
        (squared_l2_prox_, (), lambda w, r, s, t: w / (1 + 2 * t)),
        (squared_l2_decay_, (), lambda w, r, s, t: w - t * 2 * w),
        (weights_distance_l1_prox_, ("refs",), lambda w, r, s, t: r + soft_threshold(w - r, t)),
        (weights_distance_squared_l2_prox_, ("refs",), lambda w, r, s, t: r + (w - r) / (1 + 2 * t)),
        (weights_distance_squared_l2_decay_, ("refs",), lambda w, r, s, t: w - t * 2 * (w - r)),
        # relu(-w s): for s = +1 negative entries rise by t to at most 0; s = -1 mirrored; s = 0 untouched.
        (dale_sign_prox_, ("signs",), lambda w, r, s, t: np.where(
            s > 0, np.where(w < 0, np.minimum(w + t, 0), w),
            np.where(s < 0, np.where(w > 0, np.maximum(w - t, 0), w), w))),
    ]
    for operator, extra, expected in cases:
        work = [t.clone() for t in tensors]
        operator(work, *[{"refs": refs, "signs": signs}[name] for name in extra], steps)
        for out, source, w, r, s, t in zip(work, tensors, numpy_of(tensors), numpy_of(refs), numpy_of(signs), steps):
            assert out.dtype == source.dtype
            np.testing.assert_allclose(out.numpy(), expected(w, r, s, t), **tol, err_msg=operator.__name__)


@pytest.mark.parametrize("case", ["l1", "squared_l2", "distance_l1", "distance_squared", "dale"])
def test_each_prox_minimises_its_objective(case: str) -> None:
    # prox_{t g}(w) = argmin_x t g(x) + |x - w|^2 / 2: no random perturbation of the result does better.
    generator = torch.Generator().manual_seed(0)
    w = torch.randn(40, generator=generator, dtype=torch.float64)
    r = torch.randn(40, generator=generator, dtype=torch.float64)
    s = torch.randint(-1, 2, (40,), generator=generator).double()
    t = 0.4
    g = {
        "l1": lambda x: x.abs().sum(),
        "squared_l2": lambda x: x.square().sum(),
        "distance_l1": lambda x: (x - r).abs().sum(),
        "distance_squared": lambda x: (x - r).square().sum(),
        "dale": lambda x: torch.relu(-x * s).sum(),
    }[case]
    operator = {
        "l1": lambda x: l1_prox_([x], t),
        "squared_l2": lambda x: squared_l2_prox_([x], t),
        "distance_l1": lambda x: weights_distance_l1_prox_([x], [r], t),
        "distance_squared": lambda x: weights_distance_squared_l2_prox_([x], [r], t),
        "dale": lambda x: dale_sign_prox_([x], [s], t),
    }[case]
    x = w.clone()
    operator(x)

    def objective(y: torch.Tensor) -> float:
        return float(t * g(y) + 0.5 * (y - w).square().sum())

    best = objective(x)
    for scale in (1e-1, 1e-3):
        for _ in range(50):
            assert objective(x + scale * torch.randn(40, generator=generator, dtype=torch.float64)) >= best - 1e-12


def test_step_and_tensor_checks() -> None:
    w = torch.ones(3)
    with pytest.raises(ValueError, match="step must be in"):
        l1_prox_([w], -0.1)
    with pytest.raises(ValueError, match="step has 2 entries for 1 tensors"):
        l1_prox_([w], [0.1, 0.2])
    with pytest.raises(TypeError, match="step must be a real number"):
        squared_l2_prox_([w], "0.1")
    with pytest.raises(ValueError, match=r"step\[0\] must be a finite"):
        l1_prox_([w], [float("nan")])
    with pytest.raises(TypeError, match="tensors"):
        l1_prox_("w", 0.1)
    assert torch.equal(w, torch.ones(3))


# --- update="proximal" -----------------------------------------------------------------------------------------
def sparse_regression(update: str, optimizer_class=torch.optim.SGD, steps: int = 300, **opt_kwargs) -> torch.Tensor:
    """A seeded linear regression whose truth has 80 % zeros, with an L1 penalty in the given update mode."""
    torch.manual_seed(0)
    truth = torch.randn(30, 1) * (torch.rand(30, 1) < 0.2)
    x = torch.randn(200, 30)
    y = x @ truth + 0.05 * torch.randn(200, 1)
    model = nn.Linear(30, 1, bias=False)
    optimizer = optimizer_class(model.parameters(), **opt_kwargs)
    reg = nr.L1(model, Lambda=0.05, update=update)
    with reg.attach(optimizer):
        for _ in range(steps):
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
    return model.weight.detach()


@pytest.mark.parametrize("opt_kwargs, least", [({"lr": 0.05}, 24), ({"lr": 0.02, "momentum": 0.9}, 10)])
def test_proximal_l1_reaches_exact_zeros_where_subgradient_l1_does_not(opt_kwargs, least) -> None:
    proximal = sparse_regression("proximal", torch.optim.SGD, **opt_kwargs)
    gradient = sparse_regression("gradient", torch.optim.SGD, **opt_kwargs)
    exact_zeros = int((proximal == 0).sum())
    assert exact_zeros >= least, exact_zeros         # of the 27 true zeros
    assert int((gradient == 0).sum()) == 0           # the subgradient run oscillates around them
    # Both fit the same problem: they agree to within the subgradient's oscillation.
    assert (proximal - gradient).abs().max() < 0.05


def test_proximal_update_is_the_closed_form_soft_threshold_with_each_groups_lr() -> None:
    w, v = make_params((5, 4), (6,), dtype=torch.float32, seed=1)
    optimizer = torch.optim.SGD([{"params": [w]}, {"params": [v], "lr": 0.3}], lr=0.1, momentum=0.9)
    reg = nr.L1([w, v], Lambda=0.7, update="proximal")
    reg.attach(optimizer)
    w0, v0 = nn.Parameter(w.detach().clone()), nn.Parameter(v.detach().clone())
    reference = torch.optim.SGD([{"params": [w0]}, {"params": [v0], "lr": 0.3}], lr=0.1, momentum=0.9)
    for _ in range(3):
        grads = [torch.randn_like(w), torch.randn_like(v)]
        for p, q, g in ((w, w0, grads[0]), (v, v0, grads[1])):
            p.grad, q.grad = g.clone(), g.clone()
        optimizer.step()
        reference.step()   # the task step alone, then soft-thresholding by hand in NumPy
        for q, lr in ((w0, 0.1), (v0, 0.3)):
            with torch.no_grad():
                q.copy_(torch.from_numpy(soft_threshold(q.detach().numpy(), lr * 0.7)))
        torch.testing.assert_close(w.detach(), w0.detach(), rtol=0, atol=1e-7)
        torch.testing.assert_close(v.detach(), v0.detach(), rtol=0, atol=1e-7)
        # The pre-step hook added nothing to the task gradient.
        assert torch.equal(w.grad, grads[0]) and torch.equal(v.grad, grads[1])
    assert reg.global_step == 3


def test_an_lr_schedulers_lr_is_followed_and_lambda_is_the_steps() -> None:
    (w,) = make_params((50,), dtype=torch.float64, seed=2)
    optimizer = torch.optim.SGD([w], lr=0.2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    reg = nr.L1([w], Lambda=lambda step: 0.1 * (step + 1), update="proximal")
    reg.attach(optimizer)
    expected = w.detach().numpy().copy()
    for step in range(4):
        lr = 0.2 * 0.5**step
        w.grad = torch.zeros_like(w)
        optimizer.step()
        scheduler.step()
        expected = soft_threshold(expected, lr * 0.1 * (step + 1))   # Lambda of that step, before it advances
        np.testing.assert_allclose(w.detach().numpy(), expected, rtol=0, atol=1e-15)


def test_parameters_the_optimizer_does_not_step_are_left_alone() -> None:
    w, v, u = make_params((4,), (4,), (4,), dtype=torch.float64, seed=4)
    before_v, before_u = v.detach().clone(), u.detach().clone()
    optimizer = torch.optim.SGD([w, v], lr=0.5)                 # u is not in it; v gets no gradient
    reg = nr.L1([w, v, u], Lambda=1.0, update="proximal")
    reg.attach(optimizer)
    w.grad = torch.zeros_like(w)
    before_w = w.detach().numpy().copy()
    optimizer.step()
    np.testing.assert_allclose(w.detach().numpy(), soft_threshold(before_w, 0.5))
    assert torch.equal(v.detach(), before_v) and torch.equal(u.detach(), before_u)


def test_prox_step_in_a_plain_loop_reads_lrs_from_an_optimizer_or_takes_one() -> None:
    w, v = make_params((8,), (3, 3), dtype=torch.float64, seed=5)
    reg = nr.L2([w, v], Lambda=0.5, squared=True, update="proximal")
    before = numpy_of([w, v])
    reg.prox_step_(0.2)
    np.testing.assert_allclose(w.detach().numpy(), before[0] / (1 + 2 * 0.1))
    optimizer = torch.optim.SGD([{"params": [w], "lr": 1.0}, {"params": [v], "lr": 2.0}], lr=0.1)
    before = numpy_of([w, v])
    reg.prox_step_(optimizer)
    np.testing.assert_allclose(w.detach().numpy(), before[0] / (1 + 2 * 0.5))
    np.testing.assert_allclose(v.detach().numpy(), before[1] / (1 + 2 * 1.0))


def test_proximal_dale_sign_penalty_and_weights_distance_through_attach() -> None:
    w, v = make_params((6, 6), (6, 6), dtype=torch.float64, seed=6)
    reference_signs = torch.sign(torch.randn(6, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    reference_weights = make_params((6, 6), seed=9)[0].detach()
    dale = nr.DaleSignPenalty([w], reference_weights=[reference_signs], p=1, Lambda=2.0, update="proximal")
    distance = nr.WeightsDistance([v], reference_weights=[reference_weights], p=1, Lambda=3.0, update="proximal")
    optimizer = torch.optim.SGD([w, v], lr=0.1)
    dale.attach(optimizer)
    distance.attach(optimizer)
    w.grad, v.grad = torch.zeros_like(w), torch.zeros_like(v)
    before_w, before_v = numpy_of([w, v])
    optimizer.step()
    s, r = reference_signs.numpy(), reference_weights.numpy()
    wrong = before_w * s < 0
    expected_w = np.where(wrong, np.sign(before_w) * np.maximum(np.abs(before_w) - 0.2, 0), before_w)
    np.testing.assert_allclose(w.detach().numpy(), expected_w, rtol=0, atol=1e-15)
    np.testing.assert_allclose(v.detach().numpy(), r + soft_threshold(before_v - r, 0.3), rtol=0, atol=1e-15)
    assert int((v.detach() == reference_weights).sum()) > 0      # entries land exactly on their references


def test_proximal_step_follows_the_mean_reduction() -> None:
    w, v = make_params((10, 10), (4,), dtype=torch.float64, seed=7)
    reg = nr.L1([w, v], Lambda=5.0, update="proximal", reduction="mean")
    before = numpy_of([w, v])
    reg.prox_step_(0.4)
    np.testing.assert_allclose(w.detach().numpy(), soft_threshold(before[0], 0.4 * 5.0 / 100))
    np.testing.assert_allclose(v.detach().numpy(), soft_threshold(before[1], 0.4 * 5.0 / 4))


# --- update="decoupled" ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("amsgrad", [False, True])
def test_decoupled_l2_under_adam_is_adamw(amsgrad: bool) -> None:
    torch.manual_seed(0)
    x, y = torch.randn(64, 5, dtype=torch.float64), torch.randn(64, 3, dtype=torch.float64)
    models = [nn.Linear(5, 3).double() for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    Lambda, lr = 0.05, 0.01
    adam = torch.optim.Adam(models[0].parameters(), lr=lr, amsgrad=amsgrad)
    adamw = torch.optim.AdamW(models[1].parameters(), lr=lr, weight_decay=2 * Lambda, amsgrad=amsgrad)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(adam, gamma=0.9)
    scheduler_w = torch.optim.lr_scheduler.ExponentialLR(adamw, gamma=0.9)
    nr.L2(models[0], Lambda=Lambda, squared=True, update="decoupled").attach(adam)
    for _ in range(25):
        for model, optimizer, sched in ((models[0], adam, scheduler), (models[1], adamw, scheduler_w)):
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
            sched.step()
    for p, q in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(p, q, rtol=1e-13, atol=1e-14)


def test_decoupled_differs_from_adams_coupled_l2() -> None:
    runs = []
    for update in ("decoupled", "gradient"):
        torch.manual_seed(1)
        model = nn.Linear(4, 1).double()
        x, y = torch.randn(32, 4, dtype=torch.float64), torch.randn(32, 1, dtype=torch.float64)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
        nr.L2(model, Lambda=0.5, squared=True, update=update).attach(optimizer)
        for _ in range(20):
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
        runs.append(model.weight.detach().clone())
    assert (runs[0] - runs[1]).abs().max() > 1e-3


def test_decoupled_weights_distance_and_decay_step() -> None:
    (w,) = make_params((5, 5), dtype=torch.float64, seed=8)
    reference = torch.zeros(5, 5, dtype=torch.float64) + 0.5
    reg = nr.WeightsDistance([w], reference_weights=[reference], p=2, squared=True, Lambda=0.25, update="decoupled")
    before = w.detach().numpy().copy()
    reg.decay_step_(0.2)
    np.testing.assert_allclose(w.detach().numpy(), before - 0.2 * 0.25 * 2 * (before - 0.5), rtol=1e-14)
    optimizer = torch.optim.SGD([w], lr=0.2)
    reg.attach(optimizer)
    w.grad = torch.ones_like(w)
    before = w.detach().numpy().copy()
    optimizer.step()   # decay from the weights before the step, then the task step
    np.testing.assert_allclose(w.detach().numpy(), before - 0.2 * 0.25 * 2 * (before - 0.5) - 0.2, rtol=1e-14)


# --- bad input -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("build, error, match", [
    (lambda w: nr.Lp([w], p=1.5, update="proximal"), ValueError, r"Lp\(p=1.5, squared=False.*\): update='proximal'"),
    (lambda w: nr.L2([w], update="proximal"), ValueError, "needs a penalty with a proximal operator"),
    (lambda w: nr.L1([w], update="decoupled"), ValueError, "needs a squared L2 penalty"),
    (lambda w: nr.L1([w], update="prox"), ValueError, r"update must be one of \['gradient', 'proximal', 'decoupled'\]"),
    (lambda w: nr.L1([w], update="proximal", optimizer=torch.optim.SGD([w], lr=0.1)), ValueError,
     "takes no optimizer of its own"),
    (lambda w: nr.DaleSignPenalty([w], reference_weights=[torch.ones(3, 3)], update="proximal"), ValueError,
     r"DaleSignPenalty\(p=2\)"),
    (lambda w: nr.WeightsDistance([w], reference_weights=[torch.ones(3, 3)], p=2, update="proximal"), ValueError,
     "needs a penalty with a proximal operator"),
    (lambda w: nr.L1([w], reduction="avg"), ValueError, r"reduction must be one of \['sum', 'mean'\], got 'avg'"),
    (lambda w: nr.WeightsDistance([w], reference_weights=[torch.ones(3, 3)], reduction=None), ValueError, "reduction"),
])
def test_bad_update_and_reduction_arguments(build, error, match) -> None:
    (w,) = make_params((3, 3), seed=0)
    with pytest.raises(error, match=match):
        build(w)


def test_optimizer_not_holding_the_parameters_and_wrong_mode_calls() -> None:
    w, v = make_params((3,), (3,), seed=0)
    reg = nr.L1({"w": w, "v": v}, update="proximal")
    before = [w.detach().clone(), v.detach().clone()]
    with pytest.raises(ValueError, match=r"holds none of the parameters \['v'\]"):
        reg.prox_step_(torch.optim.SGD([w], lr=0.1))
    with pytest.raises(ValueError, match="holds none of its parameters"):
        reg.attach(torch.optim.SGD([nn.Parameter(torch.ones(2))], lr=0.1))
    with pytest.raises(ValueError, match="lr must be in"):
        reg.prox_step_(-1.0)
    with pytest.raises(RuntimeError, match=r"decay_step_\(\) applies update='decoupled'"):
        reg.decay_step_(0.1)
    with pytest.raises(RuntimeError, match="prox_step_"):
        nr.L1([w]).prox_step_(0.1)
    assert torch.equal(w.detach(), before[0]) and torch.equal(v.detach(), before[1])


def test_proximal_refuses_parametrized_effective_tensors() -> None:
    layer = nn.Linear(3, 3)
    torch.nn.utils.parametrize.register_parametrization(layer, "weight", nn.Identity())
    with pytest.raises(ValueError, match="effective=False"):
        nr.L1(layer, update="proximal")
    reg = nr.L1(layer, update="proximal", effective=False)
    assert "weight" not in reg.param_names and len(reg.param_names) == 2


def test_a_list_attached_applies_its_members_step_updates_weighted_by_its_lambda() -> None:
    def run(in_list: bool) -> list:
        (w, v) = make_params((5,), (4,), seed=3)
        optimizer = torch.optim.SGD([w, v], lr=0.1)
        prox = nr.L1([w], Lambda=0.4 if in_list else 0.8, update="proximal")
        decay = nr.L2([v], Lambda=0.15 if in_list else 0.3, squared=True, update="decoupled")
        if in_list:
            nr.RegularizationList([prox, decay], Lambda=2.0).attach(optimizer)
        else:
            prox.attach(optimizer), decay.attach(optimizer)
        for step in range(20):
            optimizer.zero_grad()
            (1e-3 * (w * (step + 1)).sum() + v.pow(3).sum()).backward()
            optimizer.step()
        return [w.detach().clone(), v.detach().clone()]

    alone, listed = run(False), run(True)
    assert int((alone[0] == 0).sum()) > 0   # the proximal step did act: exact zeros
    for a, b in zip(alone, listed):
        torch.testing.assert_close(b, a)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_proximal_l1_in_neurotorchs_trainer_equals_sgd_then_soft_thresholding_by_hand() -> None:
    nt = import_neurotorch()
    batches = make_batches(6)
    lr, Lambda = 0.1, 0.05
    model = seeded_model()
    reg = nr.L1(model, Lambda=Lambda, select=nr.select.weights, update="proximal")
    bptt = nt.BPTT(optimizer=torch.optim.SGD(model.parameters(), lr=lr), criterion=nn.MSELoss(), name="bptt")
    x, y = (torch.cat(tensors) for tensors in zip(*batches))
    data = torch.utils.data.DataLoader(list(zip(x, y)), batch_size=16)
    nt.trainers.Trainer(model, callbacks=[reg, bptt], device=torch.device("cpu"), verbose=False).train(
        data, n_iterations=1)
    expected = seeded_model()
    optimizer = torch.optim.SGD(expected.parameters(), lr=lr)
    for xb, yb in batches:
        optimizer.zero_grad()
        nn.functional.mse_loss(expected(xb), yb).backward()
        optimizer.step()
        with torch.no_grad():
            for layer in (expected[0], expected[2]):   # the weights; biases are not selected
                layer.weight.copy_(torch.from_numpy(soft_threshold(layer.weight.numpy(), lr * Lambda)))
    for got, want in zip(model.parameters(), expected.parameters()):
        torch.testing.assert_close(got.detach(), want.detach(), rtol=1e-5, atol=1e-6)
    assert int((model[0].weight == 0).sum()) > 0 and reg.attached_optimizers == []
