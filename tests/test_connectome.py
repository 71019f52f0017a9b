"""Connectome regularizations (DaleLawL2, DaleLaw, DaleSignPenalty, E/I ratio targets, WeightsDistance) and
their functionals: values against NumPy and the trace formula, closed-form gradients against autograd,
reference buffers, bad input, and the sign penalty acting in a trainer."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch import nn

import neuroreg as nr
from neuroreg import functional as F
from neuroreg.init import dale_
from neuroreg.testing import BPTT, ProtocolTrainer
from tests.neurotorch_support import import_neurotorch
from tests.protocol import SIZE_PATHS, make_batches, parameters_of, seeded_model, use_size_path
from tests.registry import make_params
from tests.test_callbacks import LR, assert_same, train_by_hand


def with_zeros(shape: tuple, seed: int) -> torch.Tensor:
    """Random float64 values with about a third of them exactly zero (the penalties' kinks)."""
    generator = torch.Generator().manual_seed(seed)
    values = torch.randn(shape, generator=generator, dtype=torch.float64)
    return values * (torch.rand(shape, generator=generator, dtype=torch.float64) > 0.33)


def random_signs(shape: tuple, seed: int) -> torch.Tensor:
    return with_zeros(shape, seed + 100).sign()


def autograd_grads(fn, tensors: list) -> list:
    leaves = [t.clone().requires_grad_(True) for t in tensors]
    fn(leaves).backward()
    return [leaf.grad for leaf in leaves]


SHAPES_2D = [(5, 5), (3, 8), (8, 3)]


# --- DaleLawL2 / DaleLaw -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.8, 1.0])
@pytest.mark.parametrize("shape", [(6, 6), (4, 9), (9, 4)])
def test_dale_law_l2_hand_formula_and_trace(shape: tuple, alpha: float) -> None:
    (w,) = make_params(shape)
    reg = nr.DaleLawL2([w], alpha=alpha, Lambda=0.7, inh_ratio=0.3, seed=4)
    W, S = w.detach().numpy(), reg.reference_signs[0].numpy()
    expected = 0.7 * np.sum(W * (alpha * W - (1 - alpha) * S))
    assert reg().item() == pytest.approx(expected, rel=1e-12, abs=1e-12)
    trace = 0.7 * np.trace(W.T @ (alpha * W - (1 - alpha) * S))
    assert reg().item() == pytest.approx(trace, rel=1e-10, abs=1e-10)


def test_dale_law_is_alpha_zero_and_alpha_one_is_the_sum_of_squares() -> None:
    params = make_params((5, 5), (3, 4))
    dale = nr.DaleLaw(params, Lambda=0.5, seed=1)
    torch.testing.assert_close(dale(), nr.DaleLawL2(params, alpha=0.0, Lambda=0.5, seed=1)())
    torch.testing.assert_close(dale(), -0.5 * sum((p * s).sum() for p, s in zip(params, dale.reference_signs)))
    torch.testing.assert_close(nr.DaleLawL2(params, alpha=1.0, seed=1)(), nr.L2(params, squared=True)())


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.8, 1.0])
def test_dale_law_l2_gradient_is_the_closed_form(alpha: float) -> None:
    params = make_params((6, 6), (4, 7))
    reg = nr.DaleLawL2(params, alpha=alpha, Lambda=1.7, seed=2)
    reg().backward()
    for p, s in zip(params, reg.reference_signs):
        torch.testing.assert_close(p.grad, 1.7 * (2 * alpha * p.detach() - (1 - alpha) * s))
    autograd = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    reg.accumulate_grad()
    for p, g in zip(params, autograd):
        torch.testing.assert_close(p.grad, g)


def test_dale_law_l2_minimum_is_a_scaled_sign_matrix() -> None:
    alpha = 0.6
    (w,) = make_params((5, 7))
    reg = nr.DaleLawL2([w], alpha=alpha, seed=0)
    with torch.no_grad():
        w.copy_((1 - alpha) / (2 * alpha) * reg.reference_signs[0])
    reg().backward()
    torch.testing.assert_close(w.grad, torch.zeros_like(w))


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_dale_functional_gradcheck(alpha: float) -> None:
    tensors = [torch.randn(s, dtype=torch.float64, requires_grad=True) for s in SHAPES_2D]
    signs = [random_signs(s, i) for i, s in enumerate(SHAPES_2D)]
    assert torch.autograd.gradcheck(lambda *ts: F.dale_law_l2(list(ts), signs, alpha), tensors)


def test_dale_references_from_dale_init_one_seed_per_parameter() -> None:
    params = make_params((6, 6), (6, 6), (4, 9))
    state = torch.get_rng_state()
    reg = nr.DaleLawL2(params, inh_ratio=0.25, rho=0.5, inh_first=False, seed=11)
    assert torch.equal(state, torch.get_rng_state()), "a seeded regularization moved the global generator"
    for k, (param, signs) in enumerate(zip(params, reg.reference_signs)):
        expected = dale_(torch.empty(param.shape, dtype=torch.float64), 0.25, 0.5, False, seed=11 + k).sign()
        torch.testing.assert_close(signs, expected)
    assert not torch.equal(reg.reference_signs[0], reg.reference_signs[1])
    assert reg.dale_kwargs == {"inh_ratio": 0.25, "rho": 0.5, "inh_first": False, "seed": 11, "convention": "i->j",
                              "draw": "neuroreg"}
    assert reg._buffer_list("reference_signs")[0] is reg.reference_signs[0]  # the name benchmarks/run.py reads


def test_given_reference_weights_give_their_signs_in_the_parameters_dtype() -> None:
    (w,) = make_params((3, 4), dtype=torch.float32)
    reference = torch.tensor([[2.0, -1e-30, 0.0, 3.0]] * 3, dtype=torch.float64)
    reg = nr.DaleSignPenalty([w], reference_weights=[reference])
    (signs,) = reg.reference_signs
    assert signs.dtype == torch.float32
    assert signs[0].tolist() == [1.0, -1.0, 0.0, 1.0]  # a tiny weight keeps its sign through the cast
    assert reg.dale_kwargs == {}
    reference.fill_(5.0)
    assert signs[0].tolist() == [1.0, -1.0, 0.0, 1.0]


def test_frozen_parameters_keep_their_references_but_are_skipped() -> None:
    w1, w2 = make_params((4, 4), (3, 5))
    reg = nr.DaleLawL2([w1, w2], alpha=0.5, seed=0)
    w1.requires_grad_(False)
    torch.testing.assert_close(reg(), F.dale_law_l2([w2], [reg.reference_signs[1]], 0.5))
    reg.accumulate_grad()
    assert w1.grad is None and w2.grad is not None


# --- state: buffers, checkpoints, .to() ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "build",
    [
        # Random inhibitory neurons and a sparse pattern, so that two draws give different penalties (with
        # inh_first, the row signs are fixed and only the sparsity pattern differs between draws).
        lambda params, seed: nr.DaleLawL2(params, alpha=0.7, inh_first=False, rho=0.5, seed=seed),
        lambda params, seed: nr.DaleLaw(params, inh_first=False, rho=0.5, seed=seed),
        lambda params, seed: nr.DaleSignPenalty(params, p=1, inh_ratio=0.4, inh_first=False, rho=0.5, seed=seed),
    ],
    ids=["DaleLawL2", "DaleLaw", "DaleSignPenalty"],
)
def test_rebuilt_and_loaded_from_a_checkpoint_gives_the_same_penalty(build) -> None:
    params = make_params((8, 8), (5, 3))
    reg = build(params, None)  # references from the global generator: a rebuilt one differs...
    rebuilt = build(params, None)
    assert not torch.equal(reg(), rebuilt())
    buffer = io.BytesIO()
    torch.save(reg.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert {"reference_signs_0", "reference_signs_1"} <= set(state)
    rebuilt.load_state_dict(state)  # ...until it loads the checkpoint
    assert torch.equal(reg(), rebuilt())


@pytest.mark.parametrize("cls", [nr.DaleLawL2, nr.DaleSignPenalty])
def test_a_loaded_state_reports_the_draw_it_holds(cls) -> None:
    """Issue 11, item 8: the reported dale_kwargs are the state's, as the signs are."""
    params = make_params((6, 6), (4, 5))
    drawn = {"inh_ratio": 0.3, "rho": 0.6, "inh_first": False, "seed": 2**63 + 5, "convention": "j->i",
             "draw": "neuroreg"}
    saved = cls(params, **drawn)
    loaded = cls(params, inh_ratio=0.5, seed=1)
    assert loaded.dale_kwargs["seed"] == 1
    buffer = io.BytesIO()
    torch.save(saved.state_dict(), buffer)
    buffer.seek(0)
    loaded.load_state_dict(torch.load(buffer, weights_only=True))
    assert loaded.dale_kwargs == saved.dale_kwargs == drawn
    for k, (signs, param) in enumerate(zip(loaded.reference_signs, params)):
        expected = dale_(torch.empty(param.shape, dtype=torch.float64), **{**drawn, "seed": drawn["seed"] + k})
        torch.testing.assert_close(signs, expected.sign())
    given = cls(params, reference_weights=[torch.ones(6, 6), torch.ones(4, 5)])
    assert given.dale_kwargs == {}
    given.load_state_dict(saved.state_dict())
    assert given.dale_kwargs == drawn
    saved.load_state_dict(cls(params, reference_weights=[torch.ones(6, 6), torch.ones(4, 5)]).state_dict())
    assert saved.dale_kwargs == {}


def test_the_reported_draw_survives_a_cast_of_the_regularization() -> None:
    (w,) = make_params((5, 5))
    reg = nr.DaleLaw([w], inh_ratio=0.3, rho=0.7, seed=3).to(torch.bfloat16)
    assert reg.reference_signs[0].dtype == torch.bfloat16
    assert reg.dale_kwargs["inh_ratio"] == 0.3 and reg.dale_kwargs["rho"] == 0.7  # not rounded to bfloat16


# --- convention and NeuroTorch's draw ---------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [nr.DaleLawL2, nr.DaleLaw, nr.DaleSignPenalty])
def test_post_to_pre_convention_draws_column_signs_for_rnn_weights(cls) -> None:
    rnn = nn.RNN(3, 6)
    reg = cls([rnn.weight_hh_l0, rnn.weight_ih_l0], inh_ratio=0.5, rho=1.0, seed=4, convention="j->i")
    hh, ih = reg.reference_signs
    # Column j of weight_hh_l0 is what hidden neuron j sends (h' = W_hh h): one sign per column.
    torch.testing.assert_close(hh, dale_(torch.empty(6, 6, dtype=torch.float64), 0.5, 1.0, seed=4).sign().T.float())
    torch.testing.assert_close(ih, dale_(torch.empty(3, 6, dtype=torch.float64), 0.5, 1.0, seed=5).sign().T.float())
    assert (hh[:, :3] == -1).all() and (hh[:, 3:] == 1).all()
    assert reg.dale_kwargs["convention"] == "j->i"


@pytest.mark.parametrize(
    "dale_kwargs",
    [{"rho": 0.5, "seed": 3}, {"inh_ratio": 0.2, "rho": 0.9, "inh_first": False, "seed": 0}, {"rho": 0.7}],
)
@pytest.mark.parametrize("alpha", [0.0, 0.8])
def test_neurotorch_draw_gives_neurotorchs_references_and_values(dale_kwargs: dict, alpha: float) -> None:
    import_neurotorch()
    from neurotorch.regularization.connectome import DaleLawL2 as NeuroTorchDaleLawL2

    params = make_params((8, 8), (8, 8), dtype=torch.float32, seed=2)
    theirs = NeuroTorchDaleLawL2(params, alpha, Lambda=0.5, **dale_kwargs)
    ours = nr.DaleLawL2(params, alpha, Lambda=0.5, draw="neurotorch", **dale_kwargs)
    # NeuroTorch draws every weight's reference with the same seed (or, without one, its default seed).
    for mine, reference in zip(ours.reference_signs, theirs.reference_weights):
        assert torch.equal(mine, reference)
    torch.testing.assert_close(ours(), theirs(), rtol=1e-5, atol=1e-6)


def test_references_follow_to_and_the_penalty_follows_the_parameters_dtype() -> None:
    (w,) = make_params((4, 6), dtype=torch.float32)
    reg = nr.DaleLawL2([w], alpha=0.5, seed=0)
    reg.to(torch.float64)
    assert reg.reference_signs[0].dtype == torch.float64 and w.dtype == torch.float32
    value = reg()
    assert value.dtype == torch.float32
    reg.to(torch.float32)
    torch.testing.assert_close(value, reg())
    distance = nr.WeightsDistance([w], [torch.zeros(4, 6)]).to(torch.float64)
    assert distance.reference_weights[0].dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_references_move_to_cuda() -> None:
    (w,) = make_params((4, 6), dtype=torch.float32)
    reg = nr.DaleLawL2([w], seed=0)
    w.data = w.data.cuda()
    reg.cuda()
    assert reg.reference_signs[0].device.type == "cuda"
    assert reg().device.type == "cuda"


# --- DaleSignPenalty ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [1, 1.5, 2, 3])
@pytest.mark.parametrize("shape", [(6, 6), (3, 8)])
def test_sign_penalty_hand_formula(shape: tuple, p: float) -> None:
    (w,) = make_params(shape)
    reg = nr.DaleSignPenalty([w], Lambda=0.4, p=p, inh_ratio=0.5, seed=5)
    W, S = w.detach().numpy(), reg.reference_signs[0].numpy()
    expected = 0.4 * np.sum(np.maximum(-W * S, 0) ** p)
    assert reg().item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("p", [1, 1.5, 2, 3])
def test_sign_penalty_closed_form_equals_autograd_with_zeros(p: float) -> None:
    tensors = [with_zeros(s, i) for i, s in enumerate(SHAPES_2D)]
    signs = [random_signs(s, i) for i, s in enumerate(SHAPES_2D)]
    grads = [torch.zeros_like(t) for t in tensors]
    F.dale_sign_penalty_add_grad_(grads, tensors, signs, p)
    for closed, auto in zip(grads, autograd_grads(lambda ts: F.dale_sign_penalty(ts, signs, p), tensors)):
        torch.testing.assert_close(closed, auto)


@pytest.mark.parametrize("p", [1, 2, 3])
def test_sign_penalty_gradcheck(p: float) -> None:
    # Away from the kinks (no zero weight) for p = 1.
    tensors = [(torch.randn(s, dtype=torch.float64) + 0.1).requires_grad_(True) for s in SHAPES_2D]
    signs = [random_signs(s, i) for i, s in enumerate(SHAPES_2D)]
    assert torch.autograd.gradcheck(lambda *ts: F.dale_sign_penalty(list(ts), signs, p), tensors)


SIGN_MATRICES = hnp.arrays(
    np.float64, st.tuples(st.integers(1, 6), st.integers(1, 6)), elements=st.sampled_from([-1.0, 0.0, 1.0])
)


@settings(max_examples=60, deadline=None)
@given(signs=SIGN_MATRICES, data=st.data(), obey=st.booleans(), p=st.sampled_from([1, 1.5, 2]))
def test_sign_penalty_is_zero_iff_every_weight_obeys_its_sign(signs, data, obey: bool, p: float) -> None:
    magnitudes = data.draw(hnp.arrays(np.float64, signs.shape, elements=st.just(0.0) | st.floats(1e-3, 10)))
    free = data.draw(hnp.arrays(np.float64, signs.shape, elements=st.sampled_from([-1.0, 1.0])))
    weights = np.where((signs != 0) & obey, signs, free) * magnitudes
    w = nn.Parameter(torch.from_numpy(weights))
    value = nr.DaleSignPenalty([w], reference_weights=[torch.from_numpy(signs)], p=p)().item()
    assert value >= 0
    assert (value > 0) == bool(np.any(weights * signs < 0))
    if obey:
        assert value == 0


def test_sign_penalty_leaves_right_signed_weights_alone() -> None:
    w = nn.Parameter(torch.tensor([[0.5, 2.0, -1.0], [-3.0, 0.0, 4.0]]))
    reg = nr.DaleSignPenalty([w], reference_weights=[torch.tensor([[1.0, 1.0, 1.0], [-1.0, -1.0, 0.0]])])
    reg().backward()
    assert w.grad.tolist() == [[0.0, 0.0, -2.0], [0.0, 0.0, 0.0]]


# --- E/I ratio targets --------------------------------------------------------------------------------------------
def test_exc_ratio_values_for_known_matrices() -> None:
    w = nn.Parameter(torch.tensor([[1.0, -1.0], [3.0, 0.0]], dtype=torch.float64))
    # softsign: 0.5, -0.5, 0.75, 0 -> mean 0.1875 -> ratio 0.59375
    reg = nr.ExcRatioTargetRegularization([w], exc_target_ratio=0.5, Lambda=2.0)
    assert reg.get_params_exc_ratio() == pytest.approx([0.59375])
    assert reg.get_params_inh_ratio() == pytest.approx([0.40625])
    assert reg().item() == pytest.approx(2.0 * abs(0.1875 + 1 - 2 * 0.5))
    hard = nr.ExcRatioTargetRegularization([w], exc_target_ratio=0.8, sign_func=torch.sign)
    assert hard.get_params_exc_ratio() == pytest.approx([0.625])  # 2 positive, 1 negative, 1 zero of 4
    assert hard().item() == pytest.approx(abs(0.25 + 1 - 1.6))
    all_exc = nn.Parameter(torch.ones(3, 3))
    assert nr.InhRatioTargetRegularization([all_exc], sign_func=torch.sign).get_params_inh_ratio() == [0.0]


def test_exc_ratio_numpy_formula_several_parameters() -> None:
    params = make_params((8,), (4, 5), (3, 2, 2))
    reg = nr.ExcRatioTargetRegularization(params, exc_target_ratio=0.3, Lambda=0.5)
    expected = 0.5 * sum(abs(np.mean(a / (1 + np.abs(a))) + 1 - 0.6) for a in (p.detach().numpy() for p in params))
    assert reg().item() == pytest.approx(expected, rel=1e-12)


def test_inh_ratio_is_exc_with_the_complementary_target() -> None:
    params = make_params((8,), (4, 5))
    inh = nr.InhRatioTargetRegularization(params, inh_target_ratio=0.3, Lambda=0.5, name="inh", priority=3)
    exc = nr.ExcRatioTargetRegularization(params, exc_target_ratio=0.7, Lambda=0.5)
    torch.testing.assert_close(inh(), exc())
    assert inh.name == "inh" and inh.priority == 3 and inh.inh_target_ratio == 0.3
    assert inh.get_params_inh_ratio() == pytest.approx([1 - r for r in exc.get_params_exc_ratio()])


def test_exc_ratio_closed_form_equals_autograd() -> None:
    tensors = [with_zeros(s, i) for i, s in enumerate([(7,), (4, 5), (2, 3, 3)])]
    for target in (0.1, 0.5, 0.9):
        grads = [torch.zeros_like(t) for t in tensors]
        F.exc_ratio_penalty_add_grad_(grads, tensors, target, alpha=0.3)
        auto = autograd_grads(lambda ts, target=target: 0.3 * F.exc_ratio_penalty(ts, target), tensors)
        for closed, expected in zip(grads, auto):
            torch.testing.assert_close(closed, expected)


def test_custom_sign_func_falls_back_to_autograd_for_that_instance_only() -> None:
    params = make_params((4, 4))
    custom = nr.ExcRatioTargetRegularization(params, sign_func=lambda w: torch.tanh(3 * w))
    default = nr.ExcRatioTargetRegularization(params)
    assert not custom.closed_form_grad and default.closed_form_grad
    assert nr.ExcRatioTargetRegularization.closed_form_grad and nr.InhRatioTargetRegularization.closed_form_grad
    custom().backward()
    expected = params[0].grad.clone()
    params[0].grad = None
    custom.accumulate_grad()
    torch.testing.assert_close(params[0].grad, expected)


def test_progress_bar_reports_ratios_and_the_weighted_loss() -> None:
    params = make_params((6,), (3, 3))
    exc = nr.ExcRatioTargetRegularization(params, exc_target_ratio=0.6, Lambda=0.5)
    report = exc.on_pbar_update(None)
    assert set(report) == {"exc_ratio", "exc_ratio_loss"}
    assert report["exc_ratio"] == pytest.approx(exc.get_params_exc_ratio())
    assert report["exc_ratio_loss"] == pytest.approx(exc().item())
    inh = nr.InhRatioTargetRegularization(params, inh_target_ratio=0.4, Lambda=0.5)
    report = inh.on_pbar_update(None)
    assert set(report) == {"inh_ratio", "inh_ratio_loss"}
    assert report["inh_ratio"] == pytest.approx(inh.get_params_inh_ratio())
    assert report["inh_ratio_loss"] == pytest.approx(inh().item())


# --- WeightsDistance ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.5, 1, 2, 3, math.inf])
def test_weights_distance_hand_formula_entrywise(p: float) -> None:
    params = make_params((4, 5), (6,), (2, 3, 2))
    references = [r.detach() for r in make_params((4, 5), (6,), (2, 3, 2), seed=1)]
    reg = nr.WeightsDistance(params, references, Lambda=0.3, p=p)
    diffs = [(w.detach() - r).numpy().ravel() for w, r in zip(params, references)]
    expected = 0.3 * sum(np.linalg.norm(d, ord=p) for d in diffs)
    assert reg().item() == pytest.approx(expected, rel=1e-12)


def test_weights_distance_is_not_a_matrix_norm_and_copies_its_references() -> None:
    w = nn.Parameter(torch.tensor([[3.0, 0.0], [0.0, 4.0]]))
    reference = torch.zeros(2, 2)
    reg = nr.WeightsDistance([w], [reference], p=1)
    assert reg().item() == 7.0  # torch.linalg.norm(w, 1), NeuroTorch's, would be 4
    reference.fill_(1.0)
    assert reg().item() == 7.0
    at_start = nr.WeightsDistance([w], [w.detach()], p=2)
    assert at_start().item() == 0.0
    with torch.no_grad():
        w.add_(1.0)
    assert at_start().item() == pytest.approx(2.0)


@pytest.mark.parametrize("p", [1, 1.5, 2, 3, math.inf])
def test_weights_distance_closed_form_equals_autograd_where_weights_equal_references(p: float) -> None:
    tensors = [with_zeros(s, i) for i, s in enumerate([(4, 4), (5,), (2, 3)])]
    references = [t.clone() for t in tensors]
    for r in references:
        r.view(-1)[::2] += 1.0  # the other entries equal their reference: the p = 1 kink
    grads = [torch.zeros_like(t) for t in tensors]
    F.weights_distance_add_grad_(grads, tensors, references, p)
    for closed, auto in zip(grads, autograd_grads(lambda ts: F.weights_distance(ts, references, p), tensors)):
        torch.testing.assert_close(closed, auto)


# --- bad input ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda w, v: nr.DaleLawL2([w], alpha=1.5), ValueError, r"alpha must be in \[0, 1\], got 1.5"),
        (lambda w, v: nr.DaleLawL2([w], alpha=-0.1), ValueError, "alpha must be in"),
        (lambda w, v: nr.DaleLawL2([w], alpha="0.5"), TypeError, "alpha must be a real number"),
        (lambda w, v: nr.DaleLawL2([v]), ValueError, r"params\['0'\] must be 2-D .* got shape \(5,\)"),
        (lambda w, v: nr.DaleLaw({"bias": v}), ValueError, r"params\['bias'\] must be 2-D"),
        (lambda w, v: nr.DaleSignPenalty([w, v]), ValueError, r"params\['1'\] must be 2-D"),
        (lambda w, v: nr.DaleLawL2([w], reference_weights=[]), ValueError,
         "reference_weights must hold one tensor per parameter: 1 parameters, 0 references"),
        (lambda w, v: nr.DaleLaw([w], reference_weights=[torch.ones(3, 3), torch.ones(3, 3)]), ValueError,
         "reference_weights must hold one tensor per parameter"),
        (lambda w, v: nr.DaleLawL2([w], reference_weights=[torch.ones(4, 3)]), ValueError,
         r"reference_weights\[0\] has shape \(4, 3\), but the parameter it refers to has shape \(3, 4\)"),
        (lambda w, v: nr.DaleLawL2([w], reference_weights=3), TypeError, "reference_weights must be a sequence"),
        (lambda w, v: nr.DaleLawL2([w], sparsity=0.5), ValueError, "unknown keyword argument 'sparsity'"),
        (lambda w, v: nr.DaleSignPenalty([w], alpha=0.5), ValueError, "unknown keyword argument 'alpha'"),
        (lambda w, v: nr.DaleLaw([w], reference_weights=[torch.ones(3, 4)], seed=0), ValueError,
         r"dale_kwargs \['seed'\] only apply when reference_weights is None"),
        (lambda w, v: nr.DaleLawL2([w], rho=0.0), ValueError, r"rho must be in \(0, 1\], got 0.0"),
        (lambda w, v: nr.DaleSignPenalty([w], convention="post"), ValueError, "convention must be one of"),
        (lambda w, v: nr.DaleLaw([w], reference_weights=[torch.ones(3, 4)], convention="j->i"), ValueError,
         r"dale_kwargs \['convention'\] only apply when reference_weights is None"),
        (lambda w, v: nr.DaleLaw([w], draw="numpy"), ValueError, "draw must be one of"),
        (lambda w, v: nr.DaleLawL2([w], draw="neurotorch", rho=0.5), ValueError,
         r"draw='neurotorch' needs a square tensor .* got shape \(3, 4\)"),
        (lambda w, v: nr.DaleLawL2([nn.Parameter(torch.ones(3, 3)), w], draw="neurotorch", rho=0.5), ValueError,
         "draw='neurotorch' needs a square tensor"),
        (lambda w, v: nr.DaleLawL2([nn.Parameter(torch.ones(3, 3))], draw="neurotorch", rho=1.0), ValueError,
         "draw='neurotorch' is undefined at rho=1"),
        (lambda w, v: nr.DaleLaw([w], balance=True), ValueError, "unknown keyword argument 'balance'"),
        (lambda w, v: nr.DaleLaw([w], inh_ratio=2), ValueError, r"inh_ratio must be in \[0, 1\], got 2"),
        (lambda w, v: nr.DaleLaw([w], inh_first="yes"), TypeError, "inh_first must be a bool"),
        (lambda w, v: nr.DaleLaw([w], seed=-3), ValueError, "seed must be >= 0"),
        (lambda w, v: nr.DaleSignPenalty([w], p=0.5), ValueError, r"p must be in \[1, inf\], got 0.5"),
        (lambda w, v: nr.DaleLaw([w], Lambda=-1.0), ValueError, "Lambda must be in"),
        (lambda w, v: nr.ExcRatioTargetRegularization([w], exc_target_ratio=1.0), ValueError,
         r"exc_target_ratio must be in \(0, 1\), got 1.0"),
        (lambda w, v: nr.ExcRatioTargetRegularization([w], exc_target_ratio=0), ValueError,
         r"exc_target_ratio must be in \(0, 1\), got 0"),
        (lambda w, v: nr.ExcRatioTargetRegularization([w], exc_target_ratio=None), TypeError,
         "exc_target_ratio must be a real number"),
        (lambda w, v: nr.InhRatioTargetRegularization([w], inh_target_ratio=1.2), ValueError,
         r"inh_target_ratio must be in \(0, 1\), got 1.2"),
        (lambda w, v: nr.ExcRatioTargetRegularization([w], sign_func="softsign"), TypeError,
         "sign_func must be callable, got 'softsign'"),
        (lambda w, v: nr.InhRatioTargetRegularization([w], unknown=1), TypeError, "unknown"),
        (lambda w, v: nr.WeightsDistance([w, v], [torch.zeros(3, 4)]), ValueError,
         "reference_weights must hold one tensor per parameter: 2 parameters, 1 references"),
        (lambda w, v: nr.WeightsDistance([w], [torch.zeros(4)]), ValueError,
         r"reference_weights\[0\] has shape \(4,\)"),
        (lambda w, v: nr.WeightsDistance([w], [torch.zeros(3, 4)], p=0), ValueError, r"p must be in \(0, inf\]"),
    ],
)
def test_bad_input_is_a_clear_error(build, error: type, match: str) -> None:
    w = nn.Parameter(torch.ones(3, 4))
    v = nn.Parameter(torch.ones(5))
    state = torch.get_rng_state()
    with pytest.raises(error, match=match):
        build(w, v)
    assert torch.equal(state, torch.get_rng_state()), "a refused construction drew random numbers"


def test_functionals_check_their_arguments() -> None:
    w = torch.ones(2, 3)
    with pytest.raises(ValueError, match=r"signs\[0\] has shape"):
        F.dale_law_l2([w], [torch.ones(3, 2)])
    with pytest.raises(ValueError, match="alpha must be in"):
        F.dale_law_l2([w], [w], alpha=2)
    with pytest.raises(ValueError, match="target must be in"):
        F.exc_ratio_penalty([w], target=1.0)
    with pytest.raises(ValueError, match="grads must hold one tensor per tensor"):
        F.dale_sign_penalty_add_grad_([], [w], [w])
    with pytest.raises(ValueError, match="references must hold one tensor per parameter"):
        F.weights_distance([w], [])


# --- DaleSignPenalty acting in a NeuroTorch-protocol trainer (joint mode) -------------------------------------------
STEPS = 12
# With LR = 0.1, strong enough that the penalty step dominates the task's: p = 1 moves a wrong-signed weight
# by Lambda * LR per step, p = 2 multiplies it by 1 - 2 * Lambda * LR.
SIGN_LAMBDA = {1: 1.0, 2: 4.0}


def dale_penalty(model: nn.Module, p: float) -> nr.DaleSignPenalty:
    return nr.DaleSignPenalty(model, Lambda=SIGN_LAMBDA[p], p=p, include="*.weight", inh_ratio=0.25, rho=1.0, seed=0)


def violations(params: list, reg: nr.DaleSignPenalty, tolerance: float = 0.0) -> int:
    """How many weights (of ``seeded_model``'s parameters: weight, bias, weight, bias) have the sign opposite
    to their reference, by more than ``tolerance``."""
    return sum(int((w.detach() * s < -tolerance).sum()) for w, s in zip(params[0::2], reg.reference_signs))


@pytest.mark.parametrize("p", [1, 2])
def test_sign_penalty_as_a_callback_trains_on_the_sum_and_removes_violations(p: float) -> None:
    batches = make_batches(STEPS)
    model = seeded_model()
    reg = dale_penalty(model, p)
    assert reg.mode == "joint" and reg.param_names == ["0.weight", "2.weight"]
    before = violations(parameters_of(model), reg)
    ProtocolTrainer(model, [reg, BPTT(torch.optim.SGD(model.parameters(), lr=LR))]).train(batches)
    trained = parameters_of(model)
    assert_same(trained, train_by_hand(lambda m: dale_penalty(m, p), batches))

    without = train_by_hand(lambda m: dale_penalty(m, p), batches, with_penalty=False)
    assert before > 20 and violations(without, reg) > 20  # about half of the 72 weights, throughout
    # Every wrong-signed weight is carried to zero (p = 1 pushes it at a constant rate, p = 2 shrinks it
    # geometrically); the few left on the wrong side are within 0.02 of it, where the task pushes back.
    assert violations(trained, reg, tolerance=0.02) == 0
    assert violations(trained, reg) <= (2 if p == 1 else before // 2)
    remaining = F.dale_sign_penalty(trained[0::2], reg.reference_signs, p)
    assert remaining < 1e-3 * F.dale_sign_penalty(without[0::2], reg.reference_signs, p)


def test_reference_signs_of_weights_below_the_parameters_dtype_range() -> None:
    # -1e-50 underflows to -0.0 in float32: its sign must be taken in float64, before the cast, or that
    # connection would lose its constraint. Expected values from NumPy on the float64 reference.
    (w,) = make_params((2, 3), dtype=torch.float32)
    reference = torch.tensor([[-1e-50, 1e-300, -2.0], [3.0, -1e-45, 0.0]], dtype=torch.float64)
    with torch.no_grad():
        w.copy_(torch.tensor([[0.5, -0.25, 1.0], [-2.0, 0.75, -1.0]]))
    reg = nr.DaleSignPenalty([w], reference_weights=[reference], p=2)
    S = np.sign(reference.numpy())
    np.testing.assert_array_equal(reg.reference_signs[0].numpy(), S)
    W = w.detach().double().numpy()
    assert float(reg().detach()) == pytest.approx((np.maximum(-W * S, 0) ** 2).sum(), rel=1e-6)
    reg().backward()
    np.testing.assert_allclose(w.grad.numpy(), -2 * S * np.maximum(-W * S, 0), rtol=1e-6)


@pytest.mark.parametrize("path", SIZE_PATHS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_connectome_values_on_either_size_path_equal_numpy(
    dtype: torch.dtype, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small tensors take few-kernel forms, large ones few-pass forms (a dot product, norms): both against NumPy.
    use_size_path(monkeypatch, path)
    generator = torch.Generator().manual_seed(5)
    ws = [torch.randn(5, 4, generator=generator), torch.randn(3, 3, generator=generator)]
    ss = [torch.randn(5, 4, generator=generator).sign(), torch.randn(3, 3, generator=generator).sign()]
    refs = [torch.randn(5, 4, generator=generator), torch.randn(3, 3, generator=generator)]
    w64, s64, r64 = ([t.double().numpy() for t in group] for group in (ws, ss, refs))
    ws, ss, refs = ([t.to(dtype) for t in group] for group in (ws, ss, refs))
    tolerance = 5e-3 if dtype == torch.float16 else 1e-6
    for alpha in (0.0, 0.3, 1.0):
        expected = sum(np.trace(w.T @ (alpha * w - (1 - alpha) * s)) for w, s in zip(w64, s64))
        assert float(F.dale_law_l2(ws, ss, alpha)) == pytest.approx(expected, rel=tolerance)
    for p in (1, 2, 3):
        expected = sum((np.maximum(-w * s, 0) ** p).sum() for w, s in zip(w64, s64))
        assert float(F.dale_sign_penalty(ws, ss, p)) == pytest.approx(expected, rel=tolerance)
    expected = sum(np.abs(w - r).sum() for w, r in zip(w64, r64))
    assert float(F.weights_distance(ws, refs, 1)) == pytest.approx(expected, rel=tolerance)
    softsign = [w / (1 + np.abs(w)) for w in w64]
    expected = sum(abs(x.mean() + 1 - 2 * 0.7) for x in softsign)
    assert float(F.exc_ratio_penalty(ws, 0.7)) == pytest.approx(expected, rel=tolerance)


def test_dale_law_l2_add_grad_default_scale_is_one_and_no_ratio_of_nothing() -> None:
    w, s = torch.tensor([[1.0, -2.0]]), torch.tensor([[1.0, -1.0]])
    grad = torch.zeros(1, 2)
    F.dale_law_l2_add_grad_([grad], [w], [s], alpha=0.25)
    torch.testing.assert_close(grad, 0.5 * w - 0.75 * s)
    assert F.exc_ratio([]).shape == (0,)
