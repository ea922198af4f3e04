//! The vision flow as a user sees it, through the real binary and the committed ONNX defect model:
//! simulated cameras' images become defects, uploads through `POST /api/v1/vision/detect` are
//! answered with their defect, defects move the machine's twin (defect rate, health) until it
//! shows WARNING on the WebSocket, the upload endpoint's error contract holds, and a corrupt
//! image event is dead-lettered while the pipeline goes on.

use std::time::{Duration, Instant};

use serde_json::Value;
use twinline_tests::{
    free_port, http_get_json, http_request, multipart, ort_library, repo_root, sql_rows, Part,
    Server,
};

const WRITER: &str = "writer-token-0001";
const READER: &str = "reader-token-0001";

fn config_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("twinline.toml");
    std::fs::write(
        &path,
        format!(
            "[api]\ntokens = [{{ token = \"{WRITER}\", role = \"write\" }}, \
             {{ token = \"{READER}\", role = \"read\" }}]\n"
        ),
    )
    .unwrap();
    path
}

/// (file bytes, label) of every image in the committed simulator library.
fn simset() -> Vec<(Vec<u8>, String)> {
    let dir = repo_root().join("models/vision/simset");
    let labels: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("labels.json")).unwrap()).unwrap();
    labels["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let file = e["file"].as_str().unwrap();
            (
                std::fs::read(dir.join(file)).unwrap(),
                e["type"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn detect(listen: &str, token: Option<&str>, parts: &[Part<'_>]) -> (u16, Value) {
    let (ctype, body) = multipart(parts);
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", ctype.as_str())];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    let (status, text) = http_request(listen, "POST", "/api/v1/vision/detect", &headers, &body);
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v)
}

#[test]
fn image_to_defect_to_twin_health_to_websocket_warning() {
    let ort = ort_library();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = config_file(tmp.path());
    let listen = format!("127.0.0.1:{}", free_port());
    let models = repo_root().join("models");
    let server = Server::start(
        &[
            "--config",
            config.to_str().unwrap(),
            "run",
            "--data",
            data.to_str().unwrap(),
            "--simulate",
            "--machines",
            "2",
            "--seed",
            "31",
            "--duration",
            "6h",
            "--speed",
            "3000",
            "--listen",
            &listen,
        ],
        &[
            ("TWINLINE_MODELS__DIR", models.to_str().unwrap()),
            ("TWINLINE_API__WS_PUSH_INTERVAL_MS", "300"),
            ("ORT_DYLIB_PATH", ort.to_str().unwrap()),
        ],
        &listen,
    );

    // 1. The simulated cameras' images are inspected by the model: defects appear, each from
    //    the committed model, and the twin counts the inspected parts.
    let deadline = Instant::now() + Duration::from_secs(120);
    let inspected = loop {
        let rows = sql_rows(
            &listen,
            "SELECT count(*) AS n, count(DISTINCT model_name) AS models, min(model_name) AS model \
             FROM defects WHERE request_id IS NULL",
        );
        let n = rows[0]["n"].as_i64().unwrap_or(0);
        if n >= 50 {
            assert_eq!(rows[0]["models"], 1);
            assert_eq!(rows[0]["model"], "defect-int8");
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "plant images were not inspected: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let m1 = http_get_json(&listen, "/api/v1/digital-twin/machines/M001");
    assert!(m1["parts_inspected"].as_i64().unwrap() > 0, "{m1}");
    assert!(inspected > 0);

    // 2. Uploads are answered with their defect; the model mostly agrees with the labels of the
    //    held-out library (the model card's accuracy is measured elsewhere, on 6 000 images).
    let library = simset();
    let defective: Vec<&(Vec<u8>, String)> = library
        .iter()
        .filter(|(_, l)| l != "none")
        .take(40)
        .collect();
    let clean = library.iter().find(|(_, l)| l == "none").unwrap();
    let (status, v) = detect(
        &listen,
        Some(WRITER),
        &[("file", Some("clean.png"), Some("image/png"), &clean.0)],
    );
    assert_eq!(status, 200, "{v}");
    for key in [
        "defect_detected",
        "confidence",
        "defect_type",
        "bbox",
        "processing_time_ms",
        "request_id",
        "model_name",
        "model_version",
    ] {
        assert!(v.get(key).is_some(), "response lacks {key}: {v}");
    }
    assert_eq!(v["machine_id"], "upload");
    assert!(v["processing_time_ms"].as_f64().unwrap() > 0.0);
    // The twin never invents a machine for uploads without one.
    let state = http_get_json(&listen, "/api/v1/digital-twin/state");
    assert!(
        !state.to_string().contains("\"machine_id\":\"upload\""),
        "an upload created a twin"
    );

    let before = http_get_json(&listen, "/api/v1/digital-twin/machines/M002");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut ws = rt.block_on(twinline_tests::WsClient::connect(&listen));
    let mut detected = 0;
    let mut right_type = 0;
    for (bytes, label) in &defective {
        let (status, v) = detect(
            &listen,
            Some(WRITER),
            &[
                ("machine_id", None, None, b"M002"),
                ("file", Some("part.png"), Some("image/png"), bytes),
            ],
        );
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["machine_id"], "M002");
        if v["defect_detected"] == true {
            detected += 1;
            let b = &v["bbox"];
            for k in ["x", "y", "width", "height"] {
                let x = b[k].as_f64().unwrap();
                assert!((0.0..=1.0).contains(&x), "{v}");
            }
            assert!(v["confidence"].as_f64().unwrap() > 0.0);
        } else {
            assert!(v["bbox"].is_null(), "{v}");
        }
        right_type += usize::from(v["defect_type"] == label.as_str());
    }
    assert!(
        detected >= 32,
        "only {detected} of 40 defective uploads detected"
    );
    assert!(
        right_type >= 24,
        "only {right_type} of 40 typed as labelled"
    );

    // 3. The twin counted them: defects and defect rate up, health down, WARNING pushed.
    // The answers come once the views hold the defects; the twin state they caused is appended
    // right after them, so allow the view feeder a moment to fold it in.
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let after = http_get_json(&listen, "/api/v1/digital-twin/machines/M002");
        if after["defects"].as_i64().unwrap() >= before["defects"].as_i64().unwrap() + detected {
            break after;
        }
        assert!(
            Instant::now() < deadline,
            "the twin did not count the uploads: before {before}\nafter {after}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(after["defect_rate"].as_f64().unwrap() > before["defect_rate"].as_f64().unwrap());
    assert!(after["health_score"].as_f64().unwrap() < before["health_score"].as_f64().unwrap());
    let warned = rt.block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let v = ws
                .expect_json(
                    deadline,
                    "M002 in WARNING with every upload counted within 30 s",
                )
                .await;
            if v["type"] != "twin_state" {
                continue;
            }
            let machines = v["data"]["machines"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            // A push may still carry a state from before the last uploads were counted (it
            // can already be WARNING for health): wait for one that includes them all.
            if let Some(m) = machines.iter().find(|m| m["machine_id"] == "M002") {
                if m["status"] == "WARNING"
                    && m["defects"].as_i64().unwrap_or(0) >= after["defects"].as_i64().unwrap()
                {
                    return m.clone();
                }
            }
        }
    });
    assert!(warned["defect_rate"].as_f64().unwrap() >= 0.2, "{warned}");

    // 4. The contract's errors.
    let png = &clean.0;
    let cases: Vec<(Option<&str>, Vec<Part<'_>>, u16, &str)> = vec![
        (
            None,
            vec![("file", Some("a.png"), Some("image/png"), png)],
            401,
            "missing_token",
        ),
        (
            Some(READER),
            vec![("file", Some("a.png"), Some("image/png"), png)],
            403,
            "insufficient_role",
        ),
        (
            Some(WRITER),
            vec![("machine_id", None, None, b"M001")],
            400,
            "missing_file",
        ),
        (
            Some(WRITER),
            vec![(
                "file",
                Some("a.png"),
                Some("image/png"),
                b"\x89PNG\r\n\x1a\nbroken",
            )],
            400,
            "invalid_image",
        ),
        (
            Some(WRITER),
            vec![("file", Some("a.gif"), Some("image/gif"), b"GIF89a..")],
            415,
            "unsupported_media_type",
        ),
        (
            Some(WRITER),
            vec![("file", Some("a.txt"), None, b"plain text")],
            415,
            "unsupported_media_type",
        ),
    ];
    for (token, parts, want, code) in cases {
        let (status, v) = detect(&listen, token, &parts);
        assert_eq!(status, want, "{code}: {v}");
        assert_eq!(v["type"], code, "{v}");
    }
    // Not multipart at all.
    let auth = format!("Bearer {WRITER}");
    let (status, text) = http_request(
        &listen,
        "POST",
        "/api/v1/vision/detect",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
        b"{}",
    );
    assert_eq!(status, 415, "{text}");
    // Above the size limit (16 MiB).
    let big = vec![0u8; 17 << 20];
    let (status, v) = detect(
        &listen,
        Some(WRITER),
        &[("file", Some("big.png"), Some("image/png"), &big)],
    );
    assert_eq!(status, 413, "{v}");

    // 5. A corrupt image event from a camera is dead-lettered with the reason; the pipeline goes
    //    on (an upload after it is still answered).
    let bad = serde_json::json!({
        "machine_id": "M001", "part_id": "corrupt-1", "media_type": "image/png",
        "data": "iVBORw0KGgpub3QgYSBwbmc=", "event_time": 1_767_225_600_000i64, "request_id": null
    })
    .to_string();
    let (status, text) = http_request(
        &listen,
        "POST",
        "/api/v1/ingest/images",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
        bad.as_bytes(),
    );
    assert_eq!(status, 202, "{text}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = sql_rows(
            &listen,
            "SELECT reason_type, reason, processor FROM dead_letters WHERE source_topic = 'images'",
        );
        if let Some(r) = rows.first() {
            assert_eq!(r["processor"], "vision", "{r}");
            assert!(r["reason"].as_str().unwrap().contains("decode"), "{r}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "corrupt image was not dead-lettered"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, v) = detect(
        &listen,
        Some(WRITER),
        &[("file", Some("again.png"), None, &clean.0)],
    );
    assert_eq!(status, 200, "{v}");
    server.stop();

    // 6. Replaying the log re-derives the same defects, byte for byte (live, the images came in
    //    small paced batches; the replay batches them as full as `vision.max_batch` allows).
    //    The server was stopped while the plant still ran: first let a restart finish the
    //    inputs already in the log.
    let out = twinline_tests::twinline_with_models(&[
        "run",
        "--data",
        data.to_str().unwrap(),
        "--until-caught-up",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replayed = tmp.path().join("replayed");
    let out = twinline_tests::twinline_with_models(&[
        "replay",
        "--data",
        data.to_str().unwrap(),
        "--out",
        replayed.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    twinline_tests::assert_same_derived(&data, &replayed);
}

#[test]
fn detect_answers_503_without_a_model() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config_file(tmp.path());
    let listen = format!("127.0.0.1:{}", free_port());
    // A models directory without vision/ (and without predictive/).
    let empty_models = tmp.path().join("models");
    std::fs::create_dir_all(&empty_models).unwrap();
    let server = Server::start(
        &[
            "--config",
            config.to_str().unwrap(),
            "run",
            "--data",
            tmp.path().join("data").to_str().unwrap(),
            "--listen",
            &listen,
        ],
        &[("TWINLINE_MODELS__DIR", empty_models.to_str().unwrap())],
        &listen,
    );
    let png = &simset()[0].0;
    let (status, v) = detect(
        &listen,
        Some(WRITER),
        &[("file", Some("a.png"), Some("image/png"), png)],
    );
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["type"], "model_unavailable");
    server.stop();
}

#[test]
fn detect_command_prints_the_endpoint_json() {
    let ort = ort_library();
    let library = simset();
    let (bytes, _) = library.iter().find(|(_, l)| l == "hole").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("part.png");
    std::fs::write(&file, bytes).unwrap();
    let models = repo_root().join("models");
    let out = twinline_tests::twinline_with_models(&["detect", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "defect_detected",
        "confidence",
        "defect_type",
        "bbox",
        "processing_time_ms",
    ] {
        assert!(v.get(key).is_some(), "{key} missing: {v}");
    }
    assert_eq!(v["model_name"], "defect-int8");
    assert!(
        ["none", "scratch", "crack", "hole", "stain", "contamination"]
            .contains(&v["defect_type"].as_str().unwrap())
    );
    assert_eq!(v["defect_detected"], v["defect_type"] != "none");
    // A file that is not an image fails with a clear message.
    let junk = tmp.path().join("junk.png");
    std::fs::write(&junk, b"not an image").unwrap();
    let out = std::process::Command::new(twinline_tests::twinline_bin())
        .args(["detect", junk.to_str().unwrap()])
        .env("TWINLINE_MODELS__DIR", &models)
        .env("ORT_DYLIB_PATH", &ort)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a readable image"));
}

/// Checkpoints match processor states by name: a data directory processed without the models
/// (twin only) opens with them (vision, twin, predictive) and goes on, instead of every task
/// refusing its checkpoint and restarting forever.
#[test]
fn a_model_added_later_does_not_wedge_the_tasks() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    twinline_tests::twinline(&[
        "simulate",
        "--data",
        d,
        "--machines",
        "3",
        "--duration",
        "2h",
        "--seed",
        "5",
    ]);
    let empty_models = tmp.path().join("no-models");
    std::fs::create_dir_all(&empty_models).unwrap();
    let bin = twinline_tests::twinline_bin();
    let run = |models: &std::path::Path| {
        std::process::Command::new("timeout")
            .args([
                "120",
                bin.to_str().unwrap(),
                "run",
                "--data",
                d,
                "--until-caught-up",
            ])
            .env("TWINLINE_MODELS__DIR", models)
            .env("ORT_DYLIB_PATH", ort_library())
            .env("TWINLINE_LOG", "warn")
            .output()
            .unwrap()
    };
    let first = run(&empty_models);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let twin_states = twinline_tests::dump_topic(&data, "twin-state").len();
    assert!(twin_states > 0);
    let second = run(&repo_root().join("models"));
    assert!(
        second.status.success(),
        "restart with the models failed or hung: {}",
        String::from_utf8_lossy(&second.stderr)
    );
    let log = String::from_utf8_lossy(&second.stderr);
    assert!(log.contains("processor not in the checkpoint"), "{log}");
    assert_eq!(
        twinline_tests::dump_topic(&data, "twin-state").len(),
        twin_states
    );
}
