"""Plain SGD in a trainer's place (for tests that compare two ways of computing one step).

AdamW's first step is lr x sign(g): blind to the gradient's scale and erratic where g is near its eps. With plain
SGD the weights move by lr x the gradient, so equal gradients give equal weights.
"""

import torch


def use_plain_sgd(trainer) -> list[torch.Tensor]:
    """Swap the trainer's optimiser for SGD at the same learning rates; returns the list that every optimiser
    step appends its flattened gradient to."""
    trainer.opt = torch.optim.SGD([{"params": g["params"], "lr": g["lr"]} for g in trainer.opt.param_groups])
    grads, step = [], trainer.opt.step

    def recorded_step():
        grads.append(torch.cat([p.grad.flatten() for p in trainer.params]))
        step()
    trainer.opt.step = recorded_step
    return grads
