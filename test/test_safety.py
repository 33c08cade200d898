"""SafetyFilter: whatever comes in, what goes out is finite, within limits and rate-limited."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alfie_gr00t.safety import SafetyFilter, SafetyLimits, SafetyResult, hold_command

DIM = 21
LIMITS = SafetyLimits.default()
LOWER = np.asarray(LIMITS.lower)
UPPER = np.asarray(LIMITS.upper)
STEP = np.array([0.02] * 6 + [0.05] * 15)  # per-tick limits: base dims, then joints
TOL = 1e-12

# The table of SPEC §5, written out independently of alfie_gr00t.layout.
SPEC_LOWER = [-0.15] * 3 + [-0.5] * 3 + [
    -1.5, -1.0, -1.6, -1.6, -1.6, 0.0,
    -1.5, -1.5, -1.6, -1.6, -1.6, 0.0,
    -1.0, -1.1, -0.2,
]  # fmt: skip
SPEC_UPPER = [0.15] * 3 + [0.5] * 3 + [
    1.5, 1.5, 1.6, 1.6, 1.6, 0.8,
    1.5, 1.0, 1.6, 2.7, 0.8, 0.8,
    0.5, 0.2, 0.1,
]  # fmt: skip


def midpoint():
    return (LOWER + UPPER) / 2.0


# -- limits ---------------------------------------------------------------------------


def test_default_limits_equal_spec_table():
    assert LIMITS.lower == pytest.approx(SPEC_LOWER)
    assert LIMITS.upper == pytest.approx(SPEC_UPPER)
    assert (LIMITS.max_joint_step, LIMITS.max_base_step) == (0.05, 0.02)
    assert LIMITS.dim == DIM


def test_limits_accept_lists_and_store_tuples():
    limits = SafetyLimits(lower=list(SPEC_LOWER), upper=list(SPEC_UPPER))
    assert isinstance(limits.lower, tuple) and isinstance(limits.upper, tuple)
    assert limits == LIMITS


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"lower": SPEC_LOWER[:-1]}, "lower has 20"),
        ({"lower": SPEC_LOWER[:6], "upper": SPEC_UPPER[:6]}, "at least one joint"),
        ({"lower": SPEC_LOWER[:10] + [2.0] + SPEC_LOWER[11:]}, "dim 10"),
        ({"upper": SPEC_UPPER[:7] + [float("nan")] + SPEC_UPPER[8:]}, "dim 7"),
        ({"upper": [float("inf")] + SPEC_UPPER[1:]}, "dim 0"),
        ({"lower": [0.05] + SPEC_LOWER[1:]}, "must allow 0"),
        ({"max_joint_step": 0.0}, "max_joint_step"),
        ({"max_base_step": -0.1}, "max_base_step"),
        ({"max_base_step": float("nan")}, "max_base_step"),
    ],
)
def test_limits_reject_bad_values(changes, message):
    kwargs = {"lower": SPEC_LOWER, "upper": SPEC_UPPER, **changes}
    with pytest.raises(ValueError, match=message):
        SafetyLimits(**kwargs)


# -- single ticks ---------------------------------------------------------------------


def test_command_within_limits_and_steps_passes_unchanged():
    safety = SafetyFilter(LIMITS)
    previous = midpoint()
    command = previous + 0.5 * STEP * np.where(np.arange(DIM) % 2, 1.0, -1.0)
    result = safety.apply(command, previous)
    assert isinstance(result, SafetyResult)
    np.testing.assert_array_equal(result.command, command)
    assert (result.rejected, result.clamped) == (False, 0)
    assert (safety.clamped_ticks, safety.rejected_nonfinite) == (0, 0)


def test_joint_change_per_tick_is_limited():
    safety = SafetyFilter(LIMITS)
    previous = midpoint()
    command = previous.copy()
    command[8] += 0.5  # left elbow: a 0.5 rad jump is asked
    result = safety.apply(command, previous)
    assert result.command[8] == pytest.approx(previous[8] + 0.05)
    assert result.clamped == 1
    assert safety.clamped_ticks == 1


def test_base_velocity_change_per_tick_is_limited():
    safety = SafetyFilter(LIMITS)
    previous = hold_command(midpoint())
    command = previous.copy()
    command[0] = 0.15  # full forward speed from standstill
    command[5] = -0.5
    result = safety.apply(command, previous)
    assert result.command[0] == pytest.approx(0.02)
    assert result.command[5] == pytest.approx(-0.02)
    assert result.clamped == 2


def test_position_and_velocity_limits_are_enforced():
    safety = SafetyFilter(LIMITS)
    previous = UPPER.copy()  # already at the upper limits
    result = safety.apply(UPPER + 10.0, previous)
    np.testing.assert_array_equal(result.command, UPPER)
    assert result.clamped == DIM


def test_previous_outside_limits_is_pulled_inside():
    safety = SafetyFilter(LIMITS)
    previous = midpoint()
    previous[15] = UPPER[15] + 0.3  # measured beyond the limit (e.g. pushed by hand)
    result = safety.apply(previous, previous)
    assert result.command[15] == UPPER[15]


def test_non_finite_command_is_rejected_and_previous_held():
    safety = SafetyFilter(LIMITS)
    previous = midpoint()
    previous[0] = 0.1
    for bad in (np.nan, np.inf, -np.inf):
        command = midpoint()
        command[12] = bad
        result = safety.apply(command, previous)
        assert result.rejected
        np.testing.assert_array_equal(result.command, previous)
    assert safety.rejected_nonfinite == 3
    assert safety.clamped_ticks == 0


def test_rejected_hold_is_clipped_into_limits():
    safety = SafetyFilter(LIMITS)
    previous = midpoint()
    previous[20] = 5.0
    result = safety.apply(np.full(DIM, np.nan), previous)
    assert result.rejected
    assert result.command[20] == UPPER[20]
    assert result.clamped == 1
    assert safety.clamped_ticks == 1


def test_result_does_not_alias_the_inputs():
    safety = SafetyFilter(LIMITS)
    previous = midpoint()
    command = midpoint()
    result = safety.apply(command, previous)
    result.command[:] = 0.0
    np.testing.assert_array_equal(command, midpoint())
    np.testing.assert_array_equal(previous, midpoint())


@pytest.mark.parametrize(
    "command, previous, message",
    [
        (np.zeros(20), np.zeros(DIM), "command must have shape"),
        (np.zeros(DIM), np.zeros((2, DIM)), "previous must have shape"),
        (np.zeros(DIM), np.full(DIM, np.nan), "previous command must be finite"),
    ],
)
def test_apply_rejects_bad_arguments(command, previous, message):
    with pytest.raises(ValueError, match=message):
        SafetyFilter(LIMITS).apply(command, previous)


# -- properties -----------------------------------------------------------------------

wild_value = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e6, max_value=1e6),
    st.floats(min_value=-3.0, max_value=3.0),
    st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1e308, -1e308]),
)
wild_command = st.lists(wild_value, min_size=DIM, max_size=DIM).map(np.array)
fractions = st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=DIM, max_size=DIM).map(np.array)


def within_limits(fraction):
    """A vector inside the limits; the clip guards against rounding at the top end."""
    return np.clip(LOWER + fraction * (UPPER - LOWER), LOWER, UPPER)


def check_output(result, previous):
    out = result.command
    assert out.shape == (DIM,)
    assert np.all(np.isfinite(out))
    assert np.all(out >= LOWER) and np.all(out <= UPPER)
    assert np.all(np.abs(out - previous) <= STEP + TOL)


@settings(max_examples=300, deadline=None)
@given(command=wild_command, where=fractions)
def test_any_command_yields_a_safe_output(command, where):
    previous = within_limits(where)  # any previous command within limits
    safety = SafetyFilter(LIMITS)
    result = safety.apply(command, previous)
    check_output(result, previous)
    has_nonfinite = not np.all(np.isfinite(command))
    assert result.rejected == has_nonfinite
    assert safety.rejected_nonfinite == int(has_nonfinite)
    if has_nonfinite:
        np.testing.assert_array_equal(result.command, previous)  # hold; previous was within limits
        assert result.clamped == 0
    else:
        assert result.clamped == int(np.count_nonzero(result.command != command))


@settings(max_examples=100, deadline=None)
@given(chunk=st.lists(wild_command, min_size=1, max_size=16), start=fractions)
def test_any_command_sequence_stays_safe_tick_after_tick(chunk, start):
    safety = SafetyFilter(LIMITS)
    previous = hold_command(within_limits(start))
    for command in chunk:
        result = safety.apply(command, previous)
        check_output(result, previous)
        previous = result.command
    assert safety.rejected_nonfinite == sum(not np.all(np.isfinite(c)) for c in chunk)


# -- hold -----------------------------------------------------------------------------


def test_hold_command_keeps_joints_and_zeroes_base_velocity():
    measured = np.arange(DIM, dtype=np.float64) + 1.0
    hold = hold_command(measured)
    np.testing.assert_array_equal(hold[:6], np.zeros(6))
    np.testing.assert_array_equal(hold[6:], measured[6:])
    assert measured[0] == 1.0  # the input is not modified


@pytest.mark.parametrize("bad", [np.zeros(6), np.zeros((2, DIM)), np.float64(1.0)])
def test_hold_command_rejects_bad_shapes(bad):
    with pytest.raises(ValueError, match="measured_state"):
        hold_command(bad)
