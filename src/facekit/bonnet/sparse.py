"""Sparse outputs: what the bonnet sends for a tensor that has a SparseConfig.

A client can ask, per output tensor, for only the elements that matter instead of the
whole tensor (the Pi Zero then decodes a few anchors, not all of them):

- thresholding {threshold, top_k, to_ignore}: the tensor is viewed with its
  logical_shape (e.g. [anchors, classes + 1]); every element above the threshold, not
  at an ignored (dim, label) position, becomes one entry: its full index (anchor,
  class) and its value. Entries are sorted best first and cut to top_k (0: no limit).
- from_sparse_tensor {tensor_name, squeeze_dims}: the entries selected by the named
  thresholded tensor, their indices with squeeze_dims removed (the class dimension,
  leaving the anchor) and deduplicated in order; for each, the block of this tensor at
  that index of its logical_shape (e.g. the 4 box encodings of an anchor with
  logical_shape [anchors]).

These are AIY's object detection sparse configs (aiy.vision.models.object_detection):
the scores tensor thresholded with to_ignore [(1, 0)] (background), the boxes taken
from its hits with squeeze_dims [1]. Plain numpy, no protobuf: the server converts.
"""

import collections

import numpy as np

from facekit.bonnet import BonnetError

Thresholding = collections.namedtuple(
    "Thresholding", ["logical_shape", "threshold", "top_k", "to_ignore"])
FromSparseTensor = collections.namedtuple(
    "FromSparseTensor", ["logical_shape", "tensor_name", "squeeze_dims"])
# indices: int array [K, rank]; values: float32 array [K * block] (block 1 for thresholding).
SparseTensor = collections.namedtuple("SparseTensor", ["indices", "values"])


def _view(name, values, logical_shape, inner=False):
    """values as an array of logical_shape (with a trailing block dimension if inner)."""
    shape = [int(d) for d in logical_shape]
    if not shape or any(d <= 0 for d in shape):
        raise BonnetError("sparse config of tensor {}: logical_shape {} must list one or "
                          "more positive sizes".format(name, shape))
    flat = np.asarray(values, dtype=np.float32).reshape(-1)
    count = int(np.prod(shape))
    if inner:
        if flat.size % count:
            raise BonnetError("sparse config of tensor {}: logical_shape {} ({} elements) "
                              "does not divide the tensor's {} values into blocks".format(
                                  name, shape, count, flat.size))
        return flat.reshape(shape + [flat.size // count])
    if flat.size != count:
        raise BonnetError("sparse config of tensor {}: logical_shape {} has {} elements, "
                          "the tensor has {}".format(name, shape, count, flat.size))
    return flat.reshape(shape)


def threshold(name, values, config):
    """The SparseTensor of `values` under a Thresholding config."""
    array = _view(name, values, config.logical_shape)
    keep = array > config.threshold
    for dim, label in config.to_ignore:
        if not 0 <= dim < array.ndim or not 0 <= label < array.shape[dim]:
            raise BonnetError("sparse config of tensor {}: to_ignore (dim {}, label {}) is "
                              "outside logical_shape {}".format(
                                  name, dim, label, list(array.shape)))
        where = [slice(None)] * array.ndim
        where[dim] = label
        keep[tuple(where)] = False
    indices = np.argwhere(keep)
    found = array[keep]  # row-major, the order of argwhere
    order = np.argsort(-found, kind="stable")
    if config.top_k > 0:
        order = order[:config.top_k]
    return SparseTensor(indices[order], found[order])


def select_blocks(name, values, config, source):
    """The SparseTensor of `values` at the indices of `source` (a thresholded tensor)."""
    array = _view(name, values, config.logical_shape, inner=True)
    rank = source.indices.shape[1] if source.indices.ndim == 2 else 0
    squeeze = sorted(set(int(d) for d in config.squeeze_dims))
    if any(not 0 <= d < rank for d in squeeze):
        raise BonnetError("sparse config of tensor {}: squeeze_dims {} outside the {} "
                          "dimensions of {}'s indices".format(
                              name, squeeze, rank, config.tensor_name))
    kept_dims = [d for d in range(rank) if d not in squeeze]
    if len(kept_dims) != len(config.logical_shape):
        raise BonnetError("sparse config of tensor {}: {}'s indices have {} dimensions left "
                          "after squeeze_dims {}, logical_shape {} has {}".format(
                              name, config.tensor_name, len(kept_dims), squeeze,
                              list(config.logical_shape), len(config.logical_shape)))
    seen = set()
    picked = []
    for index in source.indices[:, kept_dims]:
        key = tuple(int(i) for i in index)
        if key not in seen:
            seen.add(key)
            picked.append(key)
    if not picked:
        return SparseTensor(np.zeros((0, len(kept_dims)), np.int64), np.zeros((0,), np.float32))
    indices = np.array(picked, dtype=np.int64)
    return SparseTensor(indices, array[tuple(indices.T)].reshape(-1))


def _check_names(configs, names):
    for name in sorted(configs):
        if name not in names:
            raise BonnetError("sparse config for tensor {}: the model has no such output "
                              "(it has {})".format(name, ", ".join(sorted(names))))
        config = configs[name]
        if isinstance(config, FromSparseTensor) and \
                not isinstance(configs.get(config.tensor_name), Thresholding):
            raise BonnetError("sparse config of tensor {}: from_sparse_tensor names {}, which "
                              "has no thresholding config".format(name, config.tensor_name))


def check_configs(configs, sizes):
    """BonnetError unless `configs` ({tensor: config}) fit outputs of `sizes` ({tensor: n})."""
    _check_names(configs, sizes)
    zeros = {name: np.zeros(sizes[name], np.float32) for name in configs}
    apply(zeros, configs)


def apply(outputs, configs):
    """{tensor: SparseTensor} for every tensor of `outputs` that has a config."""
    _check_names(configs, outputs)
    result = {}
    for name in sorted(configs):
        if isinstance(configs[name], Thresholding):
            result[name] = threshold(name, outputs[name], configs[name])
    for name in sorted(configs):
        config = configs[name]
        if isinstance(config, FromSparseTensor):
            result[name] = select_blocks(name, outputs[name], config,
                                         result[config.tensor_name])
    return result
