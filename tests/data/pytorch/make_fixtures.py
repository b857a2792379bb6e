# Makes the small PyTorch checkpoints that tests/core/test_pytorch_checkpoint.cpp reads.
# Run once with the Debian torch (1.13) from this folder:  /usr/bin/python3 make_fixtures.py
# Every value is a simple formula of the element index, so the test recomputes it without Python.
import argparse
import collections

import numpy as np
import torch


def model_state(shift):
    """An OrderedDict like a DataParallel model's state_dict: `module.` prefixes, one key without."""
    sd = collections.OrderedDict()
    sd["module.f32"] = torch.arange(12, dtype=torch.float32).reshape(3, 4) * 0.25 - 1 + shift
    sd["module.f64"] = torch.arange(6, dtype=torch.float64) / 3
    sd["module.f16"] = ((torch.arange(10) - 5) * 0.5).half()
    sd["module.bf16"] = ((torch.arange(8) - 3) * 0.125).bfloat16()
    sd["module.i64"] = torch.arange(5, dtype=torch.int64) * 1000000007 - 2 ** 40
    sd["module.i32"] = torch.arange(4, dtype=torch.int32) - 2
    sd["module.u8"] = torch.arange(6, dtype=torch.uint8) * 40
    sd["module.bool"] = torch.tensor([True, False, True])
    base = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    sd["module.transposed"] = base.t()                      # (3,2), strides (1,3)
    shared = torch.arange(20, dtype=torch.float32)
    sd["module.shared_a"] = shared[1:3]                     # offset 1
    sd["module.shared_b"] = shared[5:15:2]                  # offset 5, stride 2, same storage
    sd["module.scalar"] = torch.tensor(3.5)
    sd["module.empty"] = torch.zeros(0, 4)
    sd["module.expanded"] = torch.tensor([1.0, 2.0]).expand(3, 2)  # stride (0,1)
    sd["module.param"] = torch.nn.Parameter(torch.tensor([0.5, -0.5]))
    sd["num_batches_tracked"] = torch.tensor(5)
    return sd


def nested():
    return {
        "model": model_state(0.0),
        "model_ema": collections.OrderedDict(
            [("module.f32", torch.arange(12, dtype=torch.float32).reshape(3, 4) * 0.25),
             ("module.i32", torch.arange(4, dtype=torch.int32) + 10)]),
        "optimizer": {"state": {0: {"step": 3, "exp_avg": torch.ones(2)}},
                      "param_groups": [{"lr": 0.001, "betas": (0.9, 0.999), "params": [0]}]},
        "epoch": 7, "best_acc": 81.5, "name": "tiny", "flags": (True, False, None),
        "history": [1, 2.5, "x"], "big": 2 ** 40, "neg": -5, "blob": b"\x00\x01",
    }


def timm_style():
    sd = collections.OrderedDict([("w", torch.tensor([1.0, 2.0])), ("b", torch.tensor([3.0]))])
    ema = collections.OrderedDict([("module.w", torch.tensor([1.5, 2.5])), ("module.b", torch.tensor([3.5]))])
    return {"arch": "tiny", "epoch": 2, "state_dict": sd, "state_dict_ema": ema}


def with_objects():
    sd = collections.OrderedDict([("w", torch.tensor([1.0, 2.0]))])
    return {"model": sd, "args": argparse.Namespace(lr=0.1, model="tiny"), "metric": np.float64(0.5)}


torch.save(nested(), "nested.pth")
torch.save(nested(), "nested_legacy.pth", _use_new_zipfile_serialization=False)
torch.save(nested(), "nested_proto4.pth", pickle_protocol=4)
torch.save(timm_style(), "timm_style_legacy_proto5.pth", pickle_protocol=5, _use_new_zipfile_serialization=False)
torch.save(with_objects(), "with_objects.pth")
