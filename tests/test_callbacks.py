"""The callback protocol: hooks exist with NeuroTorch's names, run in its order and by priority."""

from __future__ import annotations

from typing import Any, List

import pytest
import torch
from torch import nn

import neuroreg as nr
from neuroreg.callbacks import CHECKPOINT_CALLBACKS_STATE_KEY, HOOK_ORDER, BaseCallback
from tests.protocol import BPTT, ProtocolTrainer


class Recorder(BaseCallback):
    """Records every hook call as (name, hook)."""

    def __init__(self, log: List[tuple], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.log = log

    def __getattribute__(self, attribute: str) -> Any:
        value = super().__getattribute__(attribute)
        if attribute in HOOK_ORDER:
            log, name = super().__getattribute__("log"), super().__getattribute__("name")

            def recorded(*args: Any, **kwargs: Any) -> Any:
                log.append((name, attribute))
                return value(*args, **kwargs)

            return recorded
        return value


def data(n_batches: int = 2) -> list:
    generator = torch.Generator().manual_seed(0)
    return [(torch.randn(4, 3, generator=generator), torch.randn(4, 2, generator=generator)) for _ in range(n_batches)]


def test_every_hook_exists_on_callbacks_and_regularizations() -> None:
    reg = nr.L2(nn.Linear(2, 2))
    for hook in HOOK_ORDER:
        assert callable(getattr(BaseCallback, hook)), hook
        assert callable(getattr(reg, hook)), hook
    assert BaseCallback().on_pbar_update(None) == {}
    assert reg.priority == 10 and reg.save_state and reg.load_state


def test_hooks_run_in_neurotorch_order_and_by_priority() -> None:
    log: List[tuple] = []
    model = nn.Linear(3, 2)
    late, early = Recorder(log, name="late", priority=60), Recorder(log, name="early", priority=5)
    trainer = ProtocolTrainer(model, [late, early, BPTT(torch.optim.SGD(model.parameters(), lr=0.1))], n_epochs=2)
    trainer.train(data(2), data(1), n_iterations=2)

    early_hooks = [hook for name, hook in log if name == "early"]
    first_seen = list(dict.fromkeys(early_hooks))
    assert first_seen == list(HOOK_ORDER)
    assert early_hooks.count("start") == 1 and early_hooks.count("close") == 1
    # 2 iterations x 2 epochs x 2 training batches; validation batches never reach the optimization hooks.
    assert early_hooks.count("on_optimization_begin") == 8
    assert early_hooks.count("on_validation_batch_begin") == 2
    assert early_hooks.count("on_batch_begin") == 10
    # Within each hook, ascending priority.
    for index in range(0, len(log), 2):
        assert [log[index][0], log[index + 1][0]] == ["early", "late"]
        assert log[index][1] == log[index + 1][1]


def test_regularization_in_the_trainer_reports_and_checkpoints() -> None:
    model = nn.Linear(3, 2)
    reg = nr.L1(model, Lambda=0.1, name="sparsity")
    trainer = ProtocolTrainer(model, [reg, BPTT(torch.optim.SGD(model.parameters(), lr=0.1))])
    trainer.train(data(2), n_iterations=1)
    state = trainer.checkpoints[-1][CHECKPOINT_CALLBACKS_STATE_KEY]["sparsity"]
    assert set(state["state_dict"]) == {"_lambda"}
    reg.Lambda = 5.0
    reg.load_checkpoint_state(None, trainer.checkpoints[-1])
    assert reg.Lambda == 0.1


@pytest.mark.parametrize("save_state", [True, False])
def test_save_state_and_load_state_flags(save_state: bool) -> None:
    reg = nr.L1(nn.Linear(2, 2), Lambda=0.5, save_state=save_state)
    state = reg.get_checkpoint_state(None)
    assert (state is not None) == save_state
    reg2 = nr.L1(nn.Linear(2, 2), Lambda=1.0, name="other", load_state=False)
    reg2.load_checkpoint_state(None, {"state_dict": {"_lambda": torch.tensor(3.0, dtype=torch.float64)}})
    assert reg2.Lambda == 1.0
