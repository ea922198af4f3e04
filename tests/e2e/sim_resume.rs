//! A restarted `run --simulate` continues the same plant: running 1 h and then again to 2 h
//! leaves the same input log as one 2 h run, and a different plant is refused.

use std::process::Command;

use twinline_tests::{dump_topic, twinline, twinline_bin};

const INPUTS: [&str; 4] = ["sensor-readings", "images", "machine-events", "job-events"];

fn run_sim(dir: &std::path::Path, duration: &str, seed: &str) -> std::process::Output {
    Command::new(twinline_bin())
        .args([
            "run",
            "--data",
            dir.to_str().unwrap(),
            "--simulate",
            "--fast",
            "--machines",
            "3",
            "--duration",
            duration,
            "--seed",
            seed,
            "--until-caught-up",
        ])
        .env("TWINLINE_LOG", "warn")
        .output()
        .unwrap()
}

#[test]
fn restarted_simulation_continues_the_same_plant() {
    let tmp = tempfile::tempdir().unwrap();
    let resumed = tmp.path().join("resumed");
    let whole = tmp.path().join("whole");
    assert!(run_sim(&resumed, "1h", "9").status.success());
    let first_hour = dump_topic(&resumed, "sensor-readings").len();
    assert!(first_hour > 1000, "{first_hour} readings in the first hour");
    assert!(run_sim(&resumed, "2h", "9").status.success());
    assert!(run_sim(&whole, "2h", "9").status.success());

    for topic in INPUTS {
        let a = dump_topic(&resumed, topic);
        let b = dump_topic(&whole, topic);
        assert_eq!(a.len(), b.len(), "{topic}: record counts differ");
        for ((pa, ra), (pb, rb)) in a.iter().zip(&b) {
            assert_eq!((pa, ra.offset), (pb, rb.offset), "{topic}");
            assert_eq!(ra.key, rb.key, "{topic} {pa}/{}", ra.offset);
            assert_eq!(
                ra.value, rb.value,
                "{topic} {pa}/{}: payload differs",
                ra.offset
            );
        }
    }
    let readings = dump_topic(&whole, "sensor-readings").len();
    assert!(readings > first_hour * 3 / 2, "{readings} vs {first_hour}");
    // What was derived is the same too: origins follow the simulator's order whatever the
    // batches, and the restarted tasks continue from their checkpoints.
    twinline_tests::assert_same_derived(&resumed, &whole);

    // Running it again adds nothing: the plant's 2 h are all in the log.
    assert!(run_sim(&resumed, "2h", "9").status.success());
    assert_eq!(dump_topic(&resumed, "sensor-readings").len(), readings);

    // Another plant into the same directory is refused with the reason.
    let other = run_sim(&resumed, "2h", "10");
    assert!(!other.status.success());
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(err.contains("other settings"), "{err}");
    // And `run --simulate` over inputs it did not write is refused too.
    let foreign = tmp.path().join("foreign");
    twinline(&[
        "simulate",
        "--data",
        foreign.to_str().unwrap(),
        "--machines",
        "2",
        "--duration",
        "10m",
        "--seed",
        "1",
    ]);
    let out = run_sim(&foreign, "1h", "1");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not written by `run --simulate`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
