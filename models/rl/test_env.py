"""Checks of the environment binding (twinline_rl_env) as train.py uses it, run by scripts/test.sh:
a rollout driven from Python through observations equals the same rule run inside Rust, the step
rewards add up to (LB0 - Cmax) / LB0, observations are finite and padded with a zero mask, and
bad actions are refused with an error instead of being ignored."""

import numpy as np

import twinline_rl_env as E

F = E.N_FEATURES
assert len(E.FEATURE_NAMES) == F


def mwkr_from_python(batch) -> tuple[np.ndarray, np.ndarray]:
    """Most work remaining, chosen in Python from observation column 2 (first best on ties)."""
    n = len(batch)
    returns = np.array(batch.initial_rewards())
    while not batch.all_done():
        f, m, k = batch.observe()
        feats = np.frombuffer(f, np.float32).reshape(n, k, F)
        mask = np.frombuffer(m, np.float32).reshape(n, k)
        assert np.isfinite(feats).all()
        assert (feats[mask == 0] == 0).all(), "padding rows are zero"
        live = mask.sum(1) > 0
        assert (mask.sum(1)[live] >= 2).all(), "single-candidate points are passed by Rust"
        score = np.where(mask > 0, feats[:, :, 2], -np.inf)
        actions = [int(np.argmax(r)) if alive else 0 for r, alive in zip(score, live)]
        returns += np.array(batch.step(actions))
    return np.array(batch.makespans()), returns


def main() -> None:
    for jobs, machines in [(6, 6), (15, 10), (20, 15)]:
        batch = E.Batch.random(jobs, machines, 5, 1, 42)
        mk, returns = mwkr_from_python(batch)
        rust = np.array(batch.rule_makespans("MWKR"))
        assert (mk == rust).all(), f"{jobs}x{machines}: python-driven {mk} vs rust {rust}"
        lb0 = np.array(batch.lower_bounds(), dtype=np.float64)
        assert np.allclose(returns, (lb0 - mk) / lb0), "rewards telescope to the bound gap"
        assert (mk >= lb0).all()
    text = "2 2\n0 3 1 2\n1 4 0 1\n"
    b = E.Batch.from_orlib([text], 2)
    assert len(b) == 2 and b.copies == 2
    try:
        E.Batch.from_orlib(["2 2\n0 3\n"], 1)
        raise AssertionError("a malformed instance was accepted")
    except ValueError as e:
        assert "line" in str(e), e
    b = E.Batch.random(4, 4, 1, 1, 7)
    b.observe()
    try:
        b.step([99])
        raise AssertionError("an out-of-range action was accepted")
    except ValueError as e:
        assert "out of range" in str(e), e
    print("twinline_rl_env: ok")


if __name__ == "__main__":
    main()
