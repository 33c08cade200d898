"""A small reference policy built with the `onnx` package at test time, plus its numpy twin.

    actions[b, i, d] = tanh(s[b, d] * W[i, d] + f[b] * C[i, d] + t[b] * T[i, d])
    s = state @ P                          (every state dim feeds every action dim)
    f[b] = sum_k a_k * mean(image_k[b])    (pixels in [0, 1]; a_k differ, so all 4 cameras matter)
    t[b] = mean(language_tokens[b]) / 255  (only with_tokens=True)

Nothing binary is committed: `build_reference_policy` writes the graph where the test
asks. Keyword arguments bend the graph out of the contract for the error tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError:  # random_batch needs no onnx; the tests that build graphs importorskip("onnx")
    onnx = TensorProto = helper = numpy_helper = None

from alfie_gr00t import layout
from alfie_gr00t.engines.contract import encode_text

OPSET = 17
TOKEN_LENGTH = 32
CAMERA_WEIGHTS = (0.5, -0.25, 1.0, -0.75)


def weights(horizon=layout.ACTION_HORIZON, action_dim=layout.ACTION_DIM, state_dim=layout.ACTION_DIM):
    """The graph's constants, deterministic for given sizes."""
    rng = np.random.default_rng(1234)
    p = (np.eye(state_dim, action_dim) + 0.1 * rng.standard_normal((state_dim, action_dim))).astype(np.float32)
    w = rng.uniform(-1.5, 1.5, (horizon, action_dim)).astype(np.float32)
    c = rng.uniform(-2.0, 2.0, (horizon, action_dim)).astype(np.float32)
    t = rng.uniform(-2.0, 2.0, (horizon, action_dim)).astype(np.float32)
    return p, w, c, t


def _const(name, array):
    return numpy_helper.from_array(np.asarray(array), name=name)


def build_reference_policy(path, *, nchw=False, with_tokens=False, camera_names=layout.CAMERA_NAMES,
                           state_dim=layout.ACTION_DIM, horizon=layout.ACTION_HORIZON,
                           action_dim=layout.ACTION_DIM, batch=None, output_name="actions",
                           image_hw=(layout.IMAGE_HEIGHT, layout.IMAGE_WIDTH)) -> Path:
    """Write the reference policy to `path` (ONNX) and return the path. batch=None: dynamic."""
    h, w = image_hw
    b = batch if batch is not None else "batch"
    p, wt, c, t = weights(horizon, action_dim, state_dim)
    inits = [_const("P", p), _const("W", wt), _const("C", c), _const("axes12", np.array([1, 2], np.int64)),
             _const("axes1", np.array([1], np.int64))]
    inputs, nodes, terms = [], [], []
    for k, cam in enumerate(camera_names):
        if nchw:
            inputs.append(helper.make_tensor_value_info(cam, TensorProto.FLOAT, [b, 3, h, w]))
            source, scale = cam, CAMERA_WEIGHTS[k % 4]
        else:
            inputs.append(helper.make_tensor_value_info(cam, TensorProto.UINT8, [b, h, w, 3]))
            nodes.append(helper.make_node("Cast", [cam], [f"{cam}_f"], to=TensorProto.FLOAT))
            source, scale = f"{cam}_f", CAMERA_WEIGHTS[k % 4] / 255.0
        inits.append(_const(f"a{k}", np.array(scale, np.float32)))
        nodes.append(helper.make_node("ReduceMean", [source], [f"m{k}"], axes=[1, 2, 3], keepdims=0))
        nodes.append(helper.make_node("Mul", [f"m{k}", f"a{k}"], [f"fm{k}"]))
        terms.append(f"fm{k}")
    nodes.append(helper.make_node("Sum", terms, ["f"]))
    nodes.append(helper.make_node("Unsqueeze", ["f", "axes12"], ["f3"]))
    nodes.append(helper.make_node("Mul", ["f3", "C"], ["img_term"]))
    inputs.append(helper.make_tensor_value_info("state", TensorProto.FLOAT, [b, state_dim]))
    nodes.append(helper.make_node("MatMul", ["state", "P"], ["s"]))
    nodes.append(helper.make_node("Unsqueeze", ["s", "axes1"], ["s3"]))
    nodes.append(helper.make_node("Mul", ["s3", "W"], ["state_term"]))
    summed = ["img_term", "state_term"]
    if with_tokens:
        inputs.append(helper.make_tensor_value_info("language_tokens", TensorProto.INT64, [b, TOKEN_LENGTH]))
        inits += [_const("T", t), _const("inv255", np.array(1.0 / 255.0, np.float32))]
        nodes.append(helper.make_node("Cast", ["language_tokens"], ["tok_f"], to=TensorProto.FLOAT))
        nodes.append(helper.make_node("ReduceMean", ["tok_f"], ["tok_m"], axes=[1], keepdims=0))
        nodes.append(helper.make_node("Mul", ["tok_m", "inv255"], ["tok"]))
        nodes.append(helper.make_node("Unsqueeze", ["tok", "axes12"], ["tok3"]))
        nodes.append(helper.make_node("Mul", ["tok3", "T"], ["tok_term"]))
        summed.append("tok_term")
    nodes.append(helper.make_node("Sum", summed, ["pre"]))
    nodes.append(helper.make_node("Tanh", ["pre"], [output_name]))
    output = helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [b, horizon, action_dim])
    graph = helper.make_graph(nodes, "alfie_reference_policy", inputs, [output], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="alfie_gr00t-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, str(path))
    return path


def reference_actions(batch, *, with_tokens=False, camera_names=layout.CAMERA_NAMES) -> np.ndarray:
    """The same policy in numpy (float64) for an ObservationBatch: (B, 16, 21) float32."""
    p, w, c, t = (x.astype(np.float64) for x in weights())
    f = sum(CAMERA_WEIGHTS[k % 4] * batch.images[cam].reshape(batch.batch_size, -1).mean(axis=1) / 255.0
            for k, cam in enumerate(camera_names))
    s = np.asarray(batch.state, np.float64) @ p
    pre = s[:, None, :] * w[None] + f[:, None, None] * c[None]
    if with_tokens:
        tokens = np.stack([encode_text(text, TOKEN_LENGTH) for text in batch.language]).astype(np.float64)
        pre = pre + (tokens.mean(axis=1) / 255.0)[:, None, None] * t[None]
    return np.tanh(pre).astype(np.float32)


def random_batch(size, seed=0, language="pick up the can"):
    """A batch with distinct random images per camera and a random state."""
    from alfie_gr00t.engines.base import ObservationBatch

    rng = np.random.default_rng(seed)
    shape = (size, layout.IMAGE_HEIGHT, layout.IMAGE_WIDTH, 3)
    images = {}
    for cam in layout.CAMERA_NAMES:  # per-sample brightness, so image means differ across the batch
        scale = rng.uniform(0.1, 1.0, (size, 1, 1, 1))
        images[cam] = (rng.integers(0, 256, shape) * scale).astype(np.uint8)
    state = rng.uniform(-1.0, 1.0, (size, layout.ACTION_DIM)).astype(np.float32)
    texts = language if isinstance(language, tuple) else (language,) * size
    return ObservationBatch(images=images, state=state, language=texts)
