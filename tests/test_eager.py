"""training.eager: torch's optimizers past their torch.compile hooks step exactly as torch's, save and load
the same state, and a run's optimizers no longer import torch._dynamo."""

import copy
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from ganrun.training.eager import eager


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.LeakyReLU(0.2), nn.Linear(7, 1))


def _train(opt_cls, steps: int = 6, **kwargs) -> tuple[nn.Module, torch.optim.Optimizer]:
    net = _net(0)
    opt = opt_cls(net.parameters(), **kwargs)
    x = torch.randn(16, 5, generator=torch.Generator().manual_seed(1))
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        net(x).pow(2).mean().backward()
        opt.step()
    return net, opt


@pytest.mark.parametrize("cls,kwargs", [
    (torch.optim.Adam, {"lr": 1e-2, "betas": (0.5, 0.999)}),
    (torch.optim.Adam, {"lr": 1e-2, "betas": (0.0, 0.99), "weight_decay": 0.1, "amsgrad": True}),
    (torch.optim.RMSprop, {"lr": 1e-3, "alpha": 0.99}),
    (torch.optim.SGD, {"lr": 1e-2, "momentum": 0.9}),
])
def test_steps_and_state_are_torchs(cls, kwargs):
    fast = eager(cls)
    assert fast is not cls and issubclass(fast, cls) and fast.__name__ == cls.__name__
    net_a, opt_a = _train(cls, **kwargs)
    net_b, opt_b = _train(fast, **kwargs)
    for a, b in zip(net_a.parameters(), net_b.parameters()):
        assert torch.equal(a, b)
    assert any(not torch.equal(a, b) for a, b in zip(net_a.parameters(), _net(0).parameters()))  # it trained
    sa, sb = opt_a.state_dict(), opt_b.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    for i, state in sa["state"].items():
        assert state.keys() == sb["state"][i].keys()
        assert all(torch.equal(torch.as_tensor(v), torch.as_tensor(sb["state"][i][k])) for k, v in state.items())


def test_state_moves_between_the_two():
    """A checkpoint of torch's Adam (or of the eager one: the same state dict, above) resumes in either, and
    the next steps are the same."""
    net_a, opt_a = _train(torch.optim.Adam, steps=3, lr=1e-2)
    after = []
    for cls in (torch.optim.Adam, eager(torch.optim.Adam)):
        net = _net(5)
        net.load_state_dict(net_a.state_dict())
        opt = cls(net.parameters(), lr=1e-2)
        opt.load_state_dict(copy.deepcopy(opt_a.state_dict()))
        for _ in range(2):
            opt.zero_grad()
            net(torch.ones(4, 5)).sum().backward()
            opt.step()
        assert int(opt.state_dict()["state"][0]["step"]) == 5
        after.append([p.detach() for p in net.parameters()])
    for a, b in zip(*after):
        assert torch.equal(a, b)


def test_grad_mode_is_kept_and_grads_are_cleared():
    net, opt = _train(eager(torch.optim.Adam), steps=1, lr=1e-2)
    assert torch.is_grad_enabled()  # the step's no-grad does not leak out
    opt.zero_grad(set_to_none=True)
    assert all(p.grad is None for p in net.parameters())
    net(torch.ones(2, 5)).sum().backward()
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in net.parameters())


def test_other_targets_are_left_alone():
    class Mine(torch.optim.Adam):  # a user's own optimizer: not touched
        pass
    assert eager(Mine) is Mine
    assert eager(len) is len


def test_a_built_run_does_not_import_dynamo():
    """The point of it: a run's optimizers, built, stepped, saved and loaded, never import torch._dynamo
    (about a second of start-up). Fails when a method still goes through torch's compile hooks."""
    code = textwrap.dedent("""
        import sys, torch
        from omegaconf import OmegaConf
        from ganrun.training.build import build_optimizer
        net = torch.nn.Linear(3, 2)
        opt = build_optimizer(OmegaConf.create({"_target_": "torch.optim.Adam", "betas": [0.5, 0.999]}),
                              net.parameters(), 1e-3)
        opt.zero_grad(set_to_none=True)
        net(torch.ones(1, 3)).sum().backward()
        opt.step()
        opt.load_state_dict(opt.state_dict())
        print(type(opt).__mro__[1].__module__, "torch._dynamo" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["torch.optim.adam", "False"]
