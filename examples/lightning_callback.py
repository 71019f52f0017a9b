"""A regularization as a PyTorch Lightning callback.

``RegularizationCallback`` adds ``Lambda * ∂penalty/∂W`` to the gradients in ``on_before_optimizer_step``
(once per optimizer step, after gradient accumulation and AMP unscaling), advances the Lambda schedule, and
logs each penalty with ``pl_module.log`` (here in the progress bar). The LightningModule itself knows nothing
of the regularization. Needs ``pip install "neuroreg[lightning]"``; runs in seconds on a CPU.
"""

import lightning.pytorch as pl
import torch
from torch import nn

import neuroreg as nr
from neuroreg.integrations.lightning import RegularizationCallback


class Regressor(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(20, 32), nn.Tanh(), nn.Linear(32, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        self.log("task_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


torch.manual_seed(0)
x = torch.randn(1024, 20)
y = x[:, :3].sum(dim=1, keepdim=True) + 0.05 * torch.randn(1024, 1)
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64, shuffle=True)

module = Regressor()
regularization = nr.RegularizationList([
    nr.L1(module.net, Lambda=nr.schedules.CosineDecay(1e-2, decay_steps=160, final=1e-3), exclude="*.bias",
          name="l1"),
    nr.L2(module.net, Lambda=1e-4, squared=True, name="decay"),
])
trainer = pl.Trainer(
    max_epochs=10, accelerator="cpu", logger=False, enable_checkpointing=False, enable_model_summary=False,
    callbacks=[RegularizationCallback(regularization, prog_bar=True)],
)
trainer.fit(module, loader)

first_layer = module.net[0].weight.detach().abs().sum(dim=0)
print(f"after {regularization.global_step} optimizer steps, Lambda(l1) = {regularization[0].Lambda:.2e}")
print("last penalties:", {name: round(value, 5) for name, value in regularization.last_values().items()})
print(f"mean |weight| from the 3 useful inputs {first_layer[:3].mean():.3f}, from the 17 others "
      f"{first_layer[3:].mean():.3f}")
