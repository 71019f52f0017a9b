"""Quick start: train a small network with an L1 penalty on its weights and watch the penalty fall.

The regularization is used the plainest way: called for a penalty tensor that is added to the task loss.
Run it with ``python examples/quickstart.py`` (a few seconds on a CPU).
"""

import torch
from torch import nn

import neuroreg as nr

torch.manual_seed(0)
# A regression whose target depends on 3 of 20 inputs: the L1 penalty should prune the other 17.
x = torch.randn(512, 20)
y = x[:, :3] @ torch.tensor([[1.5], [-2.0], [0.7]]) + 0.05 * torch.randn(512, 1)

model = nn.Sequential(nn.Linear(20, 16), nn.Tanh(), nn.Linear(16, 1))
sparsity = nr.L1(model, Lambda=2e-2, exclude="*.bias")
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

print(f"{sparsity.name} (Lambda={sparsity.Lambda}) on {sparsity.param_names}")
for epoch in range(1, 201):
    optimizer.zero_grad()
    task_loss = nn.functional.mse_loss(model(x), y)
    penalty = sparsity()
    (task_loss + penalty).backward()
    optimizer.step()
    if epoch == 1 or epoch % 25 == 0:
        print(f"epoch {epoch:3d}  task loss {task_loss.item():.4f}  L1 penalty {penalty.item():.4f}")

first_layer = model[0].weight.detach().abs().sum(dim=0)
print("mean |weight| from the 3 useful inputs:", f"{first_layer[:3].mean():.3f}",
      " from the 17 others:", f"{first_layer[3:].mean():.3f}")
