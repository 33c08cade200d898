"""Isaac-GR00T N1.7 checkpoints: served, refused and engine-checked as N1.6's are.

The checkpoint is a directory written as N1.7 saves one, and Isaac-GR00T a stand-in install whose
Gr00tPolicy is the N1.7-shaped double in real torch (support/n1d7_double.py: upstream's names and
checks). Everything of ours runs for real: the registry, the generation check, `load_adopted`,
`adopt_layout`, the service's status, the ONNX Runtime DiT and `groot_check_engine`.
"""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np
import pytest

from alfie_gr00t import layout
from alfie_gr00t.engines.base import EngineConfig, EngineError
from alfie_gr00t.engines.gr00t_policy_engine import Gr00tPolicyEngine, adopt_layout
from alfie_gr00t.engines.registry import create_engine
from alfie_gr00t.server.config import ServerConfig
from alfie_gr00t.server.service import PolicyService
from alfie_gr00t.tools import check_engine

pytest.importorskip("torch", reason="torch==2.13.0 (requirements-torch.txt) runs the N1.7 double")
from support import n1d7_double as n17  # noqa: E402
from support.onnx_policy import random_batch

CONFIG = EngineConfig(mock_mode=False, device="cpu")


@pytest.fixture
def n17_install(monkeypatch, tmp_path):
    return n17.install_gr00t(monkeypatch, tmp_path / "site")


def server_config(checkpoint, **overrides) -> ServerConfig:
    return ServerConfig(mock_mode=False, model_checkpoint=str(checkpoint), device="cpu", warmup_runs=0,
                        decode_threads=1, **overrides)


def test_default_parameters_serve_an_n1d7_checkpoint_with_several_language_keys(n17_install, tmp_path, caplog):
    checkpoint = n17.write_checkpoint(tmp_path / "ckpt")
    caplog.set_level(logging.INFO, logger="alfie_gr00t.engines.gr00t_policy_engine")
    config = server_config(checkpoint)
    service = PolicyService(create_engine(config.engine_config()), config)
    batch = random_batch(1, language=("stack the cups",))
    chunk = service.engine.infer(batch).actions
    assert chunk.shape == (1, layout.ACTION_HORIZON, layout.ACTION_DIM) and np.all(np.isfinite(chunk))
    np.testing.assert_allclose(chunk[0], np.repeat(batch.state, 16, axis=0), atol=n17.DELTA_CLIP + 1e-6)
    policy = n17.Gr00tPolicyN1d7.instances[-1]
    assert policy.language_key == n17.LANGUAGE_KEYS[0]
    assert policy.seen["language"] == {key: [["stack the cups"]] for key in n17.LANGUAGE_KEYS}, \
        "N1.7's strict check wants every language key"
    served = service.status()["layout"]
    assert served["language_key"] == n17.LANGUAGE_KEYS[0] and served["language_keys"] == list(n17.LANGUAGE_KEYS)
    assert served["adopted"] == ["language_key"] and served["source"] == "checkpoint"
    assert any("2 language keys" in r.getMessage() and "reads the first" in r.getMessage() for r in caplog.records)


def test_an_explicit_language_key_must_be_the_first_one(n17_install, tmp_path):
    checkpoint = n17.write_checkpoint(tmp_path / "ckpt")
    with pytest.raises(EngineError) as err:
        create_engine(server_config(checkpoint, language_key=n17.LANGUAGE_KEYS[1]).engine_config())
    assert f"parameter '{n17.LANGUAGE_KEYS[1]}', checkpoint '{n17.LANGUAGE_KEYS[0]}' (the first of" in str(err.value)
    create_engine(server_config(checkpoint, language_key=n17.LANGUAGE_KEYS[0]).engine_config())


def test_rl_info_is_ignored_and_another_unread_modality_is_logged(caplog):
    configs = n17.modality_configs()
    assert "rl_info" in configs
    caplog.set_level(logging.WARNING, logger="alfie_gr00t.engines.gr00t_policy_engine")
    adopted, served = adopt_layout(configs, n17.statistics()[n17.TAG], CONFIG)
    assert served.language_keys == n17.LANGUAGE_KEYS and not caplog.records
    configs["proprio_history"] = n17.ModalityConfig([0], ["x"])
    adopt_layout(configs, n17.statistics()[n17.TAG], CONFIG)
    assert "['proprio_history']" in caplog.records[-1].getMessage()


def test_state_history_above_one_is_refused_with_the_reason(n17_install, tmp_path):
    configs = n17.modality_configs()
    with pytest.raises(EngineError, match=r"action head takes 2 states per observation \(state_history_length 2\); "
                                          r"this server sends one state per request: fine-tune with "
                                          r"state_history_length 1"):
        adopt_layout(configs, n17.statistics()[n17.TAG], CONFIG, state_history_length=2)
    # the whole path: a checkpoint trained with two states (state delta_indices [-1, 0]) read from the policy
    history = n17.Gr00tN1d7Config(state_history_length=2)
    checkpoint = n17.write_checkpoint(tmp_path / "ckpt", history, n17.modality_configs(state_steps=2))
    with pytest.raises(EngineError) as err:
        create_engine(server_config(checkpoint).engine_config())
    assert "state_history_length 2" in str(err.value) and "state uses 2 time steps (delta_indices [-1, 0])" in \
        str(err.value)


@pytest.mark.parametrize("theirs, installed, checkout, pin", [
    ("Gr00tN1d7", "gr00t_n1d6", "checkout main", "transformers 4.57.3"),
    ("Gr00tN1d6", "gr00t_n1d7", "checkout n1.6-release", "transformers 4.51.3"),
])
def test_a_checkpoint_of_the_other_generation_is_refused_before_the_policy_is_built(
        monkeypatch, tmp_path, theirs, installed, checkout, pin):
    package = n17.install_gr00t(monkeypatch, tmp_path / "site", module=installed)
    checkpoint = n17.write_checkpoint(tmp_path / "ckpt", model_type=theirs)
    with pytest.raises(EngineError) as err:
        Gr00tPolicyEngine(dataclasses.replace(CONFIG, model_checkpoint=str(checkpoint)))
    message = str(err.value)
    generation = {"Gr00tN1d6": "N1.6", "Gr00tN1d7": "N1.7"}
    ours = {"gr00t_n1d6": "N1.6", "gr00t_n1d7": "N1.7"}[installed]
    assert f"is Isaac-GR00T {generation[theirs]} (config.json model_type '{theirs}')" in message
    assert f"installed Isaac-GR00T at {package} is {ours} (gr00t.model.{installed})" in message
    assert f"git -C {package.parent} {checkout} && pip install -e {package.parent}" in message and pin in message
    assert f"or serve an {ours} checkpoint" in message
    assert n17.Gr00tPolicyN1d7.instances == [], "refused before upstream's code ran"


def test_check_engine_says_the_same_generation_mismatch(monkeypatch, tmp_path, capsys):
    n17.install_gr00t(monkeypatch, tmp_path / "site", module="gr00t_n1d6")
    checkpoint = n17.write_checkpoint(tmp_path / "ckpt")
    dit = n17.export_dit_like_n1d7(n17.TinyDiT(), tmp_path / "dit_fp32.onnx")
    code = check_engine.main([str(checkpoint), "--engine", str(dit), "--device", "cpu"])
    assert code == check_engine.EXIT_MISSING and "is Isaac-GR00T N1.7" in capsys.readouterr().err


def test_a_backbone_that_cannot_be_loaded_names_the_offline_fix(monkeypatch, tmp_path):
    class Offline(n17.Gr00tPolicyN1d7):
        def __init__(self, *args, **kwargs):
            raise OSError("We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find "
                          "them in the cached files.")

    n17.install_gr00t(monkeypatch, tmp_path / "site", policy=Offline)
    checkpoint = n17.write_checkpoint(tmp_path / "ckpt")
    with pytest.raises(EngineError) as err:
        Gr00tPolicyEngine(dataclasses.replace(CONFIG, model_checkpoint=str(checkpoint)))
    assert "couldn't connect" in str(err.value)
    assert "loads its backbone nvidia/Cosmos-Reason2-2B with from_pretrained" in str(err.value)
    assert "HF_HUB_OFFLINE=1" in str(err.value) and "groot_doctor --checkpoint" in str(err.value)


# ---------------------------------------------------------------- groot_check_engine on N1.7, real torch + ORT


def _check(tmp_path, capsys, wrong: bool):
    pytest.importorskip("onnxruntime")
    import onnx

    checkpoint = n17.write_checkpoint(tmp_path / "ckpt")
    eager = n17.Gr00tPolicyN1d7(n17.EmbodimentTag.NEW_EMBODIMENT, checkpoint, device="cpu")  # same seed, same weights
    dit = eager.model.action_head.model
    path = n17.export_dit_like_n1d7(n17.perturbed(dit) if wrong else dit, tmp_path / "dit_fp32.onnx")
    graph = onnx.load(str(path), load_external_data=False).graph
    inputs = {i.name: i.type.tensor_type for i in graph.input}
    assert inputs["timestep"].elem_type == onnx.TensorProto.INT64
    assert [d.dim_value for d in inputs["sa_embs"].shape.dim][:2] == [1, 17], "batch fixed at 1, as dit_only"
    code = check_engine.main([str(checkpoint), "--engine", str(path), "--device", "cpu", "--samples", "3", "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_check_engine_passes_a_correct_n1d7_dit_step_by_step(n17_install, tmp_path, capsys):
    code, result = _check(tmp_path, capsys, wrong=False)
    assert code == check_engine.EXIT_OK and result["pass"] is True, result["reasons"]
    assert result["dit_calls_per_chunk"] == 4 and result["same_inputs"]["steps"] == 12
    assert result["same_inputs"]["worst_cosine"] > 0.99999 and result["free_running"]["worst_cosine"] > 0.99999
    assert result["action_pred"]["cosine"] > 0.99999 and result["engine"]["dit_max_batch"] == 1
    policies = n17.Gr00tPolicyN1d7.instances
    assert policies[-1].seen["language"].keys() == set(n17.LANGUAGE_KEYS)


def test_check_engine_fails_a_wrong_n1d7_dit(n17_install, tmp_path, capsys):
    code, result = _check(tmp_path, capsys, wrong=True)
    assert code == check_engine.EXIT_INACCURATE and result["pass"] is False
    assert result["same_inputs"]["worst_cosine"] < 0.99
    assert any(r.startswith("DiT step, same inputs: worst cosine") for r in result["reasons"])
