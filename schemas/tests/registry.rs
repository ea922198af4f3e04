//! Registry semantics: ids, versions, idempotent registration, persistence, corruption.

use std::sync::Arc;

use twinline_schemas::*;

#[test]
fn ids_are_global_versions_per_subject_and_reregistration_is_idempotent() {
    let r = MemoryRegistry::new();
    let a = r
        .register("a-value", Topic::SensorReadings.schema_json())
        .unwrap();
    let b = r.register("b-value", Topic::Images.schema_json()).unwrap();
    assert_eq!((a, b), (1, 2));
    // Same schema again, with other whitespace and docs: same id, no new version.
    let mut v: serde_json::Value =
        serde_json::from_str(Topic::SensorReadings.schema_json()).unwrap();
    v["doc"] = serde_json::json!("another description");
    assert_eq!(r.register("a-value", &v.to_string()).unwrap(), a);
    assert_eq!(r.versions("a-value").unwrap().len(), 1);
    // A default added is a change (new version), although Parsing Canonical Form ignores it.
    let fields = v["fields"].as_array_mut().unwrap();
    fields.iter_mut().find(|f| f["name"] == "unit").unwrap()["default"] = serde_json::json!("");
    let a2 = r.register("a-value", &v.to_string()).unwrap();
    assert_eq!(a2, 3);
    assert_eq!(r.latest("a-value").unwrap().unwrap().version, 2);
    assert_eq!(
        r.subjects().unwrap(),
        vec!["a-value".to_string(), "b-value".to_string()]
    );
    assert_eq!(r.schema_by_id(b).unwrap().unwrap().subject, "b-value");
    assert_eq!(r.schema_by_id(99).unwrap(), None);
    assert_eq!(r.latest("nope").unwrap(), None);
    assert!(r.versions("nope").unwrap().is_empty());
}

#[test]
fn invalid_schema_is_refused() {
    let r = MemoryRegistry::new();
    let err = r
        .register("x-value", r#"{"type": "record", "name": "X"}"#)
        .unwrap_err();
    assert!(matches!(err, SchemaError::InvalidSchema { .. }), "{err}");
    assert!(r.subjects().unwrap().is_empty());
}

#[test]
fn embedded_registry_persists_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let ids = {
        let reg = Arc::new(EmbeddedRegistry::open(dir.path()).unwrap());
        let codec = Codec::new(reg.clone()).unwrap();
        Topic::ALL.map(|t| codec.schema_id(t))
    };
    assert!(dir.path().join("registry.json").exists());
    assert!(!dir.path().join("registry.json.tmp").exists());

    let reg = Arc::new(EmbeddedRegistry::open(dir.path()).unwrap());
    assert_eq!(reg.subjects().unwrap().len(), 10);
    for (t, id) in Topic::ALL.iter().zip(ids) {
        let s = reg.schema_by_id(id).unwrap().unwrap();
        assert_eq!(s.subject, t.subject());
        assert_eq!(s.schema, t.schema_json());
    }
    // Reopening and building a codec again registers nothing new: same ids.
    let codec = Codec::new(reg.clone()).unwrap();
    assert_eq!(Topic::ALL.map(|t| codec.schema_id(t)), ids);
    // Ids keep growing after reopen.
    let next = reg.register("extra-value", r#""string""#).unwrap();
    assert_eq!(next, ids.iter().max().unwrap() + 1);
    drop(reg);
    let reg = EmbeddedRegistry::open(dir.path()).unwrap();
    assert_eq!(
        reg.schema_by_id(next).unwrap().unwrap().subject,
        "extra-value"
    );
    assert_eq!(
        reg.register("another-value", r#""long""#).unwrap(),
        next + 1
    );
}

#[test]
fn embedded_registry_refuses_a_corrupt_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("registry.json"), b"{ not json").unwrap();
    assert!(matches!(
        EmbeddedRegistry::open(dir.path()),
        Err(SchemaError::Corrupt { .. })
    ));
    // Duplicate ids are caught as well.
    std::fs::write(
        dir.path().join("registry.json"),
        br#"{"format":1,"next_id":3,"schemas":[
            {"id":1,"subject":"a","version":1,"schema":"\"string\""},
            {"id":1,"subject":"b","version":1,"schema":"\"string\""}]}"#,
    )
    .unwrap();
    let err = EmbeddedRegistry::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("id 1 appears twice"), "{err}");
}
