"""Normalizer: identity, mean/std and min/max stats, jsonl aggregation, directory lookup, errors."""

import json

import numpy as np
import pytest

from alfie_gr00t.client.normalization import Normalizer

DIM = 21
RNG = np.random.default_rng(7)


def write_json(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def write_jsonl(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def mean_std_stats(state_mean, state_std, action_mean, action_std):
    return {
        "observation.state": {"mean": list(state_mean), "std": list(state_std)},
        "action": {"mean": list(action_mean), "std": list(action_std)},
    }


def min_max_stats(state_min, state_max, action_min, action_max):
    return {
        "observation.state": {"min": list(state_min), "max": list(state_max)},
        "action": {"min": list(action_min), "max": list(action_max)},
    }


def episode_stats(samples):
    """Per-episode LeRobot-style stats of (N, DIM) samples (population std)."""
    return {
        "mean": samples.mean(axis=0).tolist(),
        "std": samples.std(axis=0).tolist(),
        "min": samples.min(axis=0).tolist(),
        "max": samples.max(axis=0).tolist(),
        "count": [len(samples)],
    }


# -- identity -------------------------------------------------------------------------


def test_identity_changes_nothing():
    normalizer = Normalizer.identity()
    state = RNG.normal(size=DIM)
    actions = RNG.normal(size=(16, DIM))
    assert normalizer.is_identity
    assert normalizer.source is None
    np.testing.assert_array_equal(normalizer.normalize_state(state), state)
    np.testing.assert_array_equal(normalizer.denormalize_action(actions), actions)


# -- mean/std -------------------------------------------------------------------------


def test_mean_std_is_a_z_score_and_round_trips(tmp_path):
    state_mean, state_std = RNG.normal(size=DIM), RNG.uniform(0.1, 2.0, size=DIM)
    action_mean, action_std = RNG.normal(size=DIM), RNG.uniform(0.1, 2.0, size=DIM)
    path = write_json(tmp_path / "stats.json", mean_std_stats(state_mean, state_std, action_mean, action_std))
    normalizer = Normalizer.from_stats_file(str(path))
    assert not normalizer.is_identity
    assert normalizer.source == str(path)

    state = RNG.normal(size=DIM)
    np.testing.assert_allclose(normalizer.normalize_state(state), (state - state_mean) / state_std)
    np.testing.assert_allclose(normalizer.denormalize_state(normalizer.normalize_state(state)), state)

    model_actions = RNG.normal(size=(16, DIM))
    robot_actions = normalizer.denormalize_action(model_actions)
    assert robot_actions.shape == (16, DIM)
    np.testing.assert_allclose(robot_actions, model_actions * action_std + action_mean)  # action stats, not state
    np.testing.assert_allclose(normalizer.normalize_action(robot_actions), model_actions)


def test_tiny_std_is_treated_as_one(tmp_path):
    std = np.ones(DIM)
    std[4] = 1e-12
    mean = np.full(DIM, 2.0)
    path = write_json(tmp_path / "stats.json", mean_std_stats(mean, std, mean, std))
    normalizer = Normalizer.from_stats_file(str(path))
    state = np.full(DIM, 3.0)
    assert normalizer.normalize_state(state)[4] == pytest.approx(1.0)  # (3 - 2) / 1, not / 1e-12
    assert normalizer.denormalize_action(np.zeros((1, DIM)))[0, 4] == pytest.approx(2.0)


def test_mean_std_is_preferred_when_min_max_is_also_present(tmp_path):
    stats = mean_std_stats(np.ones(DIM), np.full(DIM, 2.0), np.ones(DIM), np.full(DIM, 2.0))
    for key in stats:
        stats[key].update({"min": [-10.0] * DIM, "max": [10.0] * DIM})
    normalizer = Normalizer.from_stats_file(str(write_json(tmp_path / "stats.json", stats)))
    np.testing.assert_allclose(normalizer.normalize_state(np.full(DIM, 5.0)), np.full(DIM, 2.0))


# -- min/max --------------------------------------------------------------------------


def test_min_max_scales_to_minus_one_one_and_round_trips(tmp_path):
    low, high = -RNG.uniform(0.5, 2.0, size=DIM), RNG.uniform(0.5, 2.0, size=DIM)
    path = write_json(tmp_path / "stats.json", min_max_stats(low, high, 2 * low, 2 * high))
    normalizer = Normalizer.from_stats_file(str(path))
    np.testing.assert_allclose(normalizer.normalize_state(low), -np.ones(DIM))
    np.testing.assert_allclose(normalizer.normalize_state(high), np.ones(DIM))
    np.testing.assert_allclose(normalizer.normalize_state((low + high) / 2), np.zeros(DIM), atol=1e-12)
    extremes = np.array([[-1.0] * DIM, [1.0] * DIM])
    np.testing.assert_allclose(normalizer.denormalize_action(extremes), [2 * low, 2 * high])
    state = RNG.uniform(low, high)
    np.testing.assert_allclose(normalizer.denormalize_state(normalizer.normalize_state(state)), state)


def test_min_max_zero_range_maps_zero_to_min(tmp_path):
    low, high = -np.ones(DIM), np.ones(DIM)
    low[3] = high[3] = 0.4
    path = write_json(tmp_path / "stats.json", min_max_stats(low, high, low, high))
    normalizer = Normalizer.from_stats_file(str(path))
    state = np.zeros(DIM)
    state[3] = 0.4
    normalized = normalizer.normalize_state(state)
    assert normalized[3] == 0.0 and np.all(np.isfinite(normalized))
    assert normalizer.denormalize_action(np.zeros((2, DIM)))[1, 3] == pytest.approx(0.4)


# -- jsonl aggregation ----------------------------------------------------------------


def test_jsonl_pools_episodes_weighted_by_count(tmp_path):
    episodes = [RNG.normal(loc=i, scale=1 + i, size=(n, DIM)) for i, n in enumerate((50, 200, 10))]
    records = [
        {"episode_index": i, "stats": {"observation.state": episode_stats(s), "action": episode_stats(2 * s)}}
        for i, s in enumerate(episodes)
    ]
    path = write_jsonl(tmp_path / "episodes_stats.jsonl", records)
    normalizer = Normalizer.from_stats_file(str(path))
    everything = np.concatenate(episodes)
    state = RNG.normal(size=DIM)
    expected = (state - everything.mean(axis=0)) / everything.std(axis=0)
    np.testing.assert_allclose(normalizer.normalize_state(state), expected, rtol=1e-9)
    np.testing.assert_allclose(
        normalizer.denormalize_action(np.ones((1, DIM)))[0],
        2 * everything.std(axis=0) + 2 * everything.mean(axis=0),
        rtol=1e-9,
    )


def test_jsonl_without_counts_averages_episodes_equally(tmp_path):
    def stats(mean, std):
        return {"mean": [mean] * DIM, "std": [std] * DIM}

    # Keys at top level (no "stats" wrapper) are accepted as well.
    records = [
        {"observation.state": stats(0.0, 1.0), "action": stats(0.0, 1.0)},
        {"observation.state": stats(2.0, 3.0), "action": stats(0.0, 1.0)},
    ]
    normalizer = Normalizer.from_stats_file(str(write_jsonl(tmp_path / "stats.jsonl", records)))
    pooled_std = np.sqrt((1.0 + 0.0 + 9.0 + 4.0) / 2 - 1.0**2)  # sqrt(mean(std^2 + mean^2) - mean^2)
    np.testing.assert_allclose(normalizer.normalize_state(np.full(DIM, 1.0 + pooled_std)), np.ones(DIM))


def test_jsonl_min_max_takes_min_of_mins_and_max_of_maxes(tmp_path):
    def stats(low, high):
        return {"min": [low] * DIM, "max": [high] * DIM}

    records = [
        {"stats": {"observation.state": stats(-1.0, 0.5), "action": stats(0.0, 1.0)}},
        {"stats": {"observation.state": stats(-0.5, 3.0), "action": stats(0.0, 1.0)}},
    ]
    normalizer = Normalizer.from_stats_file(str(write_jsonl(tmp_path / "stats.jsonl", records)))
    np.testing.assert_allclose(normalizer.normalize_state(np.full(DIM, -1.0)), -np.ones(DIM))
    np.testing.assert_allclose(normalizer.normalize_state(np.full(DIM, 3.0)), np.ones(DIM))


# -- directory lookup -----------------------------------------------------------------


def constant_stats(mean):
    return mean_std_stats([mean] * DIM, [1.0] * DIM, [mean] * DIM, [1.0] * DIM)


def mean_seen(normalizer):
    return -normalizer.normalize_state(np.zeros(DIM))[0]


def test_directory_prefers_meta_stats_json(tmp_path):
    write_json(tmp_path / "meta" / "stats.json", constant_stats(1.0))
    write_json(tmp_path / "stats.json", constant_stats(2.0))
    write_jsonl(tmp_path / "meta" / "episodes_stats.jsonl", [{"stats": constant_stats(3.0)}])
    normalizer = Normalizer.from_stats_file(str(tmp_path))
    assert mean_seen(normalizer) == 1.0
    assert normalizer.source == str(tmp_path / "meta" / "stats.json")


def test_directory_falls_back_to_stats_json_then_episodes_stats(tmp_path):
    write_jsonl(tmp_path / "meta" / "episodes_stats.jsonl", [{"stats": constant_stats(3.0)}])
    assert mean_seen(Normalizer.from_stats_file(str(tmp_path))) == 3.0
    write_json(tmp_path / "stats.json", constant_stats(2.0))
    assert mean_seen(Normalizer.from_stats_file(str(tmp_path))) == 2.0


def test_directory_without_stats_names_the_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no stats file in directory") as error:
        Normalizer.from_stats_file(str(tmp_path))
    assert str(tmp_path) in str(error.value)


# -- errors ---------------------------------------------------------------------------


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(FileNotFoundError, match="does not exist") as error:
        Normalizer.from_stats_file(str(missing))
    assert str(missing) in str(error.value)


@pytest.mark.parametrize("key", ["observation.state", "action"])
def test_missing_key_is_named(tmp_path, key):
    stats = constant_stats(0.0)
    del stats[key]
    path = write_json(tmp_path / "stats.json", stats)
    with pytest.raises(ValueError, match=f"no '{key}' entry") as error:
        Normalizer.from_stats_file(str(path))
    assert str(path) in str(error.value)


def test_wrong_length_is_reported(tmp_path):
    stats = constant_stats(0.0)
    stats["action"]["std"] = [1.0] * 20
    path = write_json(tmp_path / "stats.json", stats)
    with pytest.raises(ValueError, match="action.std has length 20, expected 21"):
        Normalizer.from_stats_file(str(path))


def test_dim_parameter_sets_the_expected_length(tmp_path):
    stats = mean_std_stats([0.0] * 7, [1.0] * 7, [0.0] * 7, [1.0] * 7)
    path = write_json(tmp_path / "stats.json", stats)
    assert Normalizer.from_stats_file(str(path), dim=7).dim == 7
    with pytest.raises(ValueError, match="expected 21"):
        Normalizer.from_stats_file(str(path))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_values_are_rejected(tmp_path, bad):
    stats = constant_stats(0.0)
    stats["observation.state"]["mean"][5] = bad
    path = write_json(tmp_path / "stats.json", stats)
    with pytest.raises(ValueError, match="observation.state.mean has non-finite values"):
        Normalizer.from_stats_file(str(path))


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"median": [0.0] * DIM}, "needs mean/std or min/max"),
        ({"mean": [0.0] * DIM, "std": [-1.0] * DIM}, "negative"),
        ({"min": [1.0] * DIM, "max": [0.0] * DIM}, "min is above"),
        ({"mean": "zero", "std": [1.0] * DIM}, "not a list of numbers"),
    ],
)
def test_malformed_entries_are_rejected(tmp_path, entry, message):
    stats = constant_stats(0.0)
    stats["action"] = entry
    with pytest.raises(ValueError, match=message):
        Normalizer.from_stats_file(str(write_json(tmp_path / "stats.json", stats)))


def test_invalid_json_is_reported(tmp_path):
    path = tmp_path / "stats.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        Normalizer.from_stats_file(str(path))


def test_bad_jsonl_line_is_reported_with_its_number(tmp_path):
    path = tmp_path / "stats.jsonl"
    path.write_text(json.dumps({"stats": constant_stats(0.0)}) + "\n{broken\n")
    with pytest.raises(ValueError, match="line 2"):
        Normalizer.from_stats_file(str(path))


def test_empty_jsonl_is_rejected(tmp_path):
    path = tmp_path / "stats.jsonl"
    path.write_text("\n")
    with pytest.raises(ValueError, match="no episodes"):
        Normalizer.from_stats_file(str(path))


def test_jsonl_episode_missing_a_key_is_named(tmp_path):
    records = [{"stats": constant_stats(0.0)}, {"stats": {"action": constant_stats(0.0)["action"]}}]
    with pytest.raises(ValueError, match="episode 1 has no 'observation.state'"):
        Normalizer.from_stats_file(str(write_jsonl(tmp_path / "stats.jsonl", records)))


def test_wrong_vector_size_is_rejected_at_use():
    normalizer = Normalizer.identity()
    with pytest.raises(ValueError, match="dimension of 21"):
        normalizer.normalize_state(np.zeros(20))
    with pytest.raises(ValueError, match="dimension of 21"):
        normalizer.denormalize_action(np.zeros((16, 3)))
