//! kill -9 at random points, many times, then a restart: derived topics have no gap and no
//! duplicate (they equal a clean replay byte for byte) and the views equal the replay's views.
//! Also: garbage on a segment tail is truncated on recovery and nothing before it is lost.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use twinline_tests::{assert_same_derived, dump_topic, twinline, twinline_bin};

#[test]
fn kill_dash_nine_in_a_loop_loses_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    twinline(&[
        "simulate",
        "--data",
        d,
        "--machines",
        "20",
        "--duration",
        "4h",
        "--seed",
        "42",
    ]);

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut killed = 0;
    for _ in 0..12 {
        let mut child = Command::new(twinline_bin())
            .args(["run", "--data", d, "--until-caught-up"])
            .env("TWINLINE_LOG", "error")
            // Frequent checkpoints so kills land between, during and right after them.
            .env("TWINLINE_RUNTIME__CHECKPOINT_INTERVAL_MS", "20")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.gen_range(30..400)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        }
        let _ = child.wait();
    }
    assert!(
        killed >= 3,
        "only {killed} runs were killed before finishing; make the input larger"
    );
    twinline(&["run", "--data", d, "--until-caught-up"]);

    let replay = tmp.path().join("replay");
    let r = replay.to_str().unwrap();
    twinline(&["replay", "--data", d, "--out", r]);
    assert_same_derived(&data, &replay);

    for sql in [
        "SELECT * FROM twin_state ORDER BY machine_id",
        "SELECT machine_id, count(*) AS n, max(cycles) AS c FROM twin_state_history GROUP BY machine_id ORDER BY machine_id",
        "SELECT count(*) AS n FROM sensor_readings",
    ] {
        let a = twinline(&["query", "--data", d, sql, "--format", "json"]).stdout;
        let b = twinline(&["query", "--data", r, sql, "--format", "json"]).stdout;
        assert_eq!(String::from_utf8_lossy(&a), String::from_utf8_lossy(&b), "views differ for {sql}");
        assert!(a.len() > 10, "empty result for {sql}");
    }
}

#[test]
fn garbage_on_a_segment_tail_is_truncated_and_nothing_before_it_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    twinline(&[
        "simulate",
        "--data",
        d,
        "--machines",
        "4",
        "--duration",
        "20m",
        "--seed",
        "3",
    ]);
    let before = dump_topic(&data, "sensor-readings");
    // Append garbage (a plausible length prefix, then junk) to the newest segment of partition 0.
    let part = data.join("log").join("sensor-readings").join("0");
    let mut segs: Vec<_> = std::fs::read_dir(&part)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log" || x == "seg"))
        .collect();
    segs.sort();
    let seg = segs.last().expect("a segment file").clone();
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&[
        0x00, 0x00, 0x00, 0x40, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5,
    ])
    .unwrap();
    drop(f);
    // A writer open recovers the log; processing then runs over the intact records.
    twinline(&["run", "--data", d, "--until-caught-up"]);
    let after = dump_topic(&data, "sensor-readings");
    assert_eq!(before, after, "records before the garbage changed");
    let twin = dump_topic(&data, "twin-state");
    assert!(!twin.is_empty());
}
