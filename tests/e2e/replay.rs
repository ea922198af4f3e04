//! Replay oracle: re-deriving a finished run from its inputs gives byte-identical derived topics,
//! and `--until` gives exactly a prefix of them.

use std::path::Path;

use twinline_tests::{assert_same_derived, dump_topic, twinline, DERIVED};

fn simulate(dir: &Path, machines: &str, duration: &str, seed: &str) {
    let d = dir.to_str().unwrap();
    twinline(&[
        "simulate",
        "--data",
        d,
        "--machines",
        machines,
        "--duration",
        duration,
        "--seed",
        seed,
    ]);
}

#[test]
fn replay_of_a_live_run_is_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let live = tmp.path().join("live");
    let l = live.to_str().unwrap();
    // Live: the simulator feeds the pipeline while it runs (in one process), flat out.
    twinline(&[
        "run",
        "--data",
        l,
        "--simulate",
        "--fast",
        "--machines",
        "12",
        "--duration",
        "3h",
        "--seed",
        "11",
        "--until-caught-up",
    ]);
    let twin = dump_topic(&live, "twin-state");
    assert!(
        twin.len() > 50,
        "the live run derived only {} twin-state events",
        twin.len()
    );

    let replay = tmp.path().join("replay");
    twinline(&["replay", "--data", l, "--out", replay.to_str().unwrap()]);
    assert_same_derived(&live, &replay);

    // And a second replay of the replay: still identical (no hidden state).
    let again = tmp.path().join("again");
    twinline(&[
        "replay",
        "--data",
        replay.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert_same_derived(&live, &again);
}

#[test]
fn replay_until_is_a_prefix_of_the_full_derivation() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    simulate(&data, "8", "2h", "5");
    let d = data.to_str().unwrap();
    twinline(&["run", "--data", d, "--until-caught-up"]);
    let cut = tmp.path().join("cut");
    // The simulator starts at 2026-01-01T00:00:00Z; stop the replay an hour in.
    twinline(&[
        "replay",
        "--data",
        d,
        "--out",
        cut.to_str().unwrap(),
        "--until",
        "2026-01-01T01:00:00Z",
    ]);
    let mut some_shorter = false;
    for t in DERIVED {
        let full = dump_topic(&data, t);
        let part = dump_topic(&cut, t);
        for p in 0..8u32 {
            let f: Vec<_> = full.iter().filter(|(q, _)| *q == p).collect();
            let c: Vec<_> = part.iter().filter(|(q, _)| *q == p).collect();
            assert!(
                c.len() <= f.len(),
                "{t}/{p}: replay --until derived more than the full run"
            );
            assert_eq!(
                &f[..c.len()],
                &c[..],
                "{t}/{p}: replay --until is not a prefix"
            );
            some_shorter |= c.len() < f.len();
        }
    }
    assert!(some_shorter, "--until cut nothing");
    // Inputs later than the cut were not copied.
    let inputs = dump_topic(&cut, "sensor-readings");
    let cut_ms = 1_767_229_200_000i64; // 2026-01-01T01:00:00Z
    assert!(!inputs.is_empty());
    assert!(
        inputs.iter().all(|(_, r)| r.timestamp <= cut_ms),
        "an input after --until was copied"
    );
}

/// Processing order is the origin order, and origins follow the simulator's order however its
/// events are grouped into appends: two runs of the same plant, one appending 4 096 events at a
/// time and one 97, derive byte-identical topics (vision, twin, predictive and the rescheduler with
/// the dispatching policy's quick plans all running).
#[test]
fn derived_events_do_not_depend_on_ingest_batching() {
    let ort = twinline_tests::ort_library();
    let models = twinline_tests::repo_root().join("models");
    let tmp = tempfile::tempdir().unwrap();
    let dirs = [tmp.path().join("b4096"), tmp.path().join("b97")];
    for (dir, batch) in dirs.iter().zip(["4096", "97"]) {
        let out = std::process::Command::new(twinline_tests::twinline_bin())
            .args([
                "run",
                "--data",
                dir.to_str().unwrap(),
                "--simulate",
                "--machines",
                "4",
                "--seed",
                "2024",
                "--duration",
                "3d",
                "--until-caught-up",
                "--fast",
                "--ingest-batch",
                batch,
            ])
            .env("TWINLINE_MODELS__DIR", &models)
            .env("ORT_DYLIB_PATH", &ort)
            .env("TWINLINE_SIMULATOR__SENSOR_INTERVAL_MS", "10000")
            .env("TWINLINE_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for t in [
        "defects",
        "twin-state",
        "failure-predictions",
        "schedule-changes",
    ] {
        assert!(
            !twinline_tests::dump_topic(&dirs[0], t).is_empty(),
            "{t} is empty: the comparison would prove nothing"
        );
    }
    // The rescheduler's quick plans (the learned dispatching policy) are among the compared bytes.
    let plans = twinline_tests::dump_topic(&dirs[0], "schedule-changes");
    let quick = plans
        .iter()
        .filter(|(_, r)| String::from_utf8_lossy(&r.value).contains("dispatching policy"))
        .count();
    assert!(
        quick > 0,
        "no quick plan among {} schedule changes",
        plans.len()
    );
    twinline_tests::assert_same_derived(&dirs[0], &dirs[1]);
}
