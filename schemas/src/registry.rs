//! The schema registry contract, its backward-compatibility rule, and two implementations:
//! [`EmbeddedRegistry`] (one JSON file, for embedded mode) and [`MemoryRegistry`] (tests), plus
//! [`RegistryBook`], the same rules over a state stored elsewhere (a Kafka topic).
//!
//! Semantics follow Confluent's registry where it matters to the wire format: ids are global,
//! start at 1 and only grow; versions are per subject and start at 1; registering a schema that
//! is already a version of the subject returns that version's id. The compatibility level is
//! BACKWARD_TRANSITIVE: a new version must read data written with every earlier version.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::SchemaError;

/// One version of one subject.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RegisteredSchema {
    /// Global id, the one in the wire format.
    pub id: u32,
    pub subject: String,
    /// 1-based version within the subject.
    pub version: u32,
    /// The schema text exactly as registered.
    pub schema: String,
}

/// A schema registry: subjects with versioned Avro schemas and global ids.
pub trait SchemaRegistry: Send + Sync {
    /// Registers `schema_json` as the next version of `subject` and returns its id; returns the
    /// existing id when the same schema is already a version of the subject.
    /// Fails with [`SchemaError::Incompatible`] when it cannot read every earlier version.
    fn register(&self, subject: &str, schema_json: &str) -> Result<u32, SchemaError>;

    fn schema_by_id(&self, id: u32) -> Result<Option<RegisteredSchema>, SchemaError>;

    fn latest(&self, subject: &str) -> Result<Option<RegisteredSchema>, SchemaError>;

    /// All subjects, sorted.
    fn subjects(&self) -> Result<Vec<String>, SchemaError>;

    /// Every version of `subject`, oldest first (empty for an unknown subject).
    fn versions(&self, subject: &str) -> Result<Vec<RegisteredSchema>, SchemaError>;
}

/// Whether two schema texts denote the same schema for registration purposes: equal JSON once
/// every `doc` attribute is removed (key order and whitespace do not matter).
///
/// Stricter than Avro's Parsing Canonical Form on purpose: that form drops `default`s, and
/// adding a default is a real change for compatibility (it must become a new version).
pub fn same_schema(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(mut a), Ok(mut b)) => {
            strip_docs(&mut a);
            strip_docs(&mut b);
            a == b
        }
        _ => false,
    }
}

fn strip_docs(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            map.remove("doc");
            for (_, child) in map.iter_mut() {
                strip_docs(child);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_docs),
        _ => {}
    }
}

/// Parses a schema text with apache-avro, naming the subject in the error.
pub fn parse_schema(subject: &str, schema_json: &str) -> Result<apache_avro::Schema, SchemaError> {
    apache_avro::Schema::parse_str(schema_json).map_err(|e| SchemaError::InvalidSchema {
        subject: subject.to_string(),
        reason: e.to_string(),
    })
}

/// BACKWARD_TRANSITIVE check: `new` (as reader) must fully read data written with every schema
/// in `earlier` (as writers). "Partial" compatibility (e.g. an enum symbol removed) is refused
/// because some old records would then fail to decode.
pub fn check_backward(
    subject: &str,
    earlier: &[RegisteredSchema],
    new: &apache_avro::Schema,
) -> Result<(), SchemaError> {
    for old in earlier {
        let writer = parse_schema(subject, &old.schema)?;
        let incompatible = |why: String| SchemaError::Incompatible {
            subject: subject.to_string(),
            reason: format!(
                "the new schema cannot read data written with version {} (id {}): {why}",
                old.version, old.id
            ),
        };
        match SchemaCompatibility::can_read(&writer, new) {
            Ok(Compatibility::Full) => {}
            Ok(Compatibility::Partial) => {
                return Err(incompatible(
                    "only partially compatible (some values, e.g. removed enum symbols or union \
                     branches, would not resolve)"
                        .to_string(),
                ))
            }
            Err(e) => return Err(incompatible(e.to_string())),
        }
    }
    Ok(())
}

/// The registry's whole state; also the JSON file format of [`EmbeddedRegistry`].
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
struct RegistryState {
    /// Format of this file; bumped if it ever changes.
    format: u32,
    /// The id the next new schema gets (ids are never reused, even across subjects).
    next_id: u32,
    /// Every version of every subject, in registration order.
    schemas: Vec<RegisteredSchema>,
}

const FORMAT: u32 = 1;

impl RegistryState {
    fn new() -> Self {
        RegistryState {
            format: FORMAT,
            next_id: 1,
            schemas: Vec::new(),
        }
    }

    fn versions(&self, subject: &str) -> Vec<RegisteredSchema> {
        self.schemas
            .iter()
            .filter(|s| s.subject == subject)
            .cloned()
            .collect()
    }

    /// Returns the id and whether the state changed.
    fn register(&mut self, subject: &str, schema_json: &str) -> Result<(u32, bool), SchemaError> {
        match self.plan(subject, schema_json)? {
            Registration::Existing(s) => Ok((s.id, false)),
            Registration::New(s) => {
                let id = s.id;
                self.next_id = id.checked_add(1).ok_or(SchemaError::IdsExhausted)?;
                self.schemas.push(s);
                Ok((id, true))
            }
        }
    }

    /// What registering `schema_json` under `subject` would do, without doing it.
    fn plan(&self, subject: &str, schema_json: &str) -> Result<Registration, SchemaError> {
        let parsed = parse_schema(subject, schema_json)?;
        let earlier = self.versions(subject);
        if let Some(existing) = earlier.iter().find(|s| same_schema(&s.schema, schema_json)) {
            return Ok(Registration::Existing(existing.clone()));
        }
        check_backward(subject, &earlier, &parsed)?;
        if self.next_id == u32::MAX {
            return Err(SchemaError::IdsExhausted);
        }
        let version = earlier.iter().map(|s| s.version).max().unwrap_or(0) + 1;
        Ok(Registration::New(RegisteredSchema {
            id: self.next_id,
            subject: subject.to_string(),
            version,
            schema: schema_json.to_string(),
        }))
    }

    fn by_id(&self, id: u32) -> Option<RegisteredSchema> {
        self.schemas.iter().find(|s| s.id == id).cloned()
    }

    fn latest(&self, subject: &str) -> Option<RegisteredSchema> {
        self.schemas
            .iter()
            .filter(|s| s.subject == subject)
            .max_by_key(|s| s.version)
            .cloned()
    }

    fn subjects(&self) -> Vec<String> {
        let mut subjects: Vec<String> = self.schemas.iter().map(|s| s.subject.clone()).collect();
        subjects.sort();
        subjects.dedup();
        subjects
    }

    /// Checks what a file written by another program (or a damaged one) could get wrong.
    fn validate(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!("unsupported format {}", self.format));
        }
        let mut ids = std::collections::HashSet::new();
        let mut versions = std::collections::HashSet::new();
        for s in &self.schemas {
            if s.id == 0 || s.id >= self.next_id {
                return Err(format!("id {} outside 1..next_id ({})", s.id, self.next_id));
            }
            if !ids.insert(s.id) {
                return Err(format!("id {} appears twice", s.id));
            }
            if !versions.insert((s.subject.as_str(), s.version)) {
                return Err(format!("{} version {} appears twice", s.subject, s.version));
            }
            apache_avro::Schema::parse_str(&s.schema)
                .map_err(|e| format!("schema id {} does not parse: {e}", s.id))?;
        }
        Ok(())
    }
}

/// What registering a schema under a subject amounts to (see [`RegistryBook::plan`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// The same schema is already a version of the subject: its id is the answer.
    Existing(RegisteredSchema),
    /// A new version with the next free id, not yet recorded anywhere.
    New(RegisteredSchema),
}

/// The registry's rules over a state that is stored elsewhere, e.g. a Kafka topic read back in
/// order: [`plan`](Self::plan) decides with the same rules as the built-in registries
/// (ids, versions, BACKWARD_TRANSITIVE), [`apply`](Self::apply) records what the store holds.
#[derive(Debug, Clone)]
pub struct RegistryBook {
    state: RegistryState,
}

impl Default for RegistryBook {
    fn default() -> Self {
        RegistryBook {
            state: RegistryState::new(),
        }
    }
}

impl RegistryBook {
    pub fn new() -> Self {
        Self::default()
    }

    /// What registering `schema_json` under `subject` would do; changes nothing.
    pub fn plan(&self, subject: &str, schema_json: &str) -> Result<Registration, SchemaError> {
        self.state.plan(subject, schema_json)
    }

    /// Records a schema read from the store. Returns false, recording nothing, when it
    /// conflicts with one recorded earlier (its id, or its subject and version, are taken) or
    /// its id is 0 or its text does not parse: in a store read in order, the first writer wins.
    pub fn apply(&mut self, s: RegisteredSchema) -> bool {
        let st = &mut self.state;
        if s.id == 0
            || s.version == 0
            || st
                .schemas
                .iter()
                .any(|o| o.id == s.id || (o.subject == s.subject && o.version == s.version))
            || apache_avro::Schema::parse_str(&s.schema).is_err()
        {
            return false;
        }
        st.next_id = st.next_id.max(s.id.saturating_add(1));
        st.schemas.push(s);
        true
    }

    pub fn by_id(&self, id: u32) -> Option<RegisteredSchema> {
        self.state.by_id(id)
    }

    pub fn latest(&self, subject: &str) -> Option<RegisteredSchema> {
        self.state.latest(subject)
    }

    /// Every version of `subject`, in registration order.
    pub fn versions(&self, subject: &str) -> Vec<RegisteredSchema> {
        self.state.versions(subject)
    }

    /// All subjects, sorted.
    pub fn subjects(&self) -> Vec<String> {
        self.state.subjects()
    }

    /// The version of `subject` that is the same schema as `schema_json`, if any.
    pub fn lookup(&self, subject: &str, schema_json: &str) -> Option<RegisteredSchema> {
        self.state
            .schemas
            .iter()
            .find(|s| s.subject == subject && same_schema(&s.schema, schema_json))
            .cloned()
    }

    /// Every schema recorded, in the order recorded.
    pub fn all(&self) -> &[RegisteredSchema] {
        &self.state.schemas
    }
}

/// In-memory registry, for tests and tools; starts empty.
#[derive(Debug)]
pub struct MemoryRegistry {
    state: Mutex<RegistryState>,
}

impl MemoryRegistry {
    pub fn new() -> Self {
        MemoryRegistry {
            state: Mutex::new(RegistryState::new()),
        }
    }
}

impl Default for MemoryRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl SchemaRegistry for MemoryRegistry {
    fn register(&self, subject: &str, schema_json: &str) -> Result<u32, SchemaError> {
        self.state
            .lock()
            .register(subject, schema_json)
            .map(|(id, _)| id)
    }

    fn schema_by_id(&self, id: u32) -> Result<Option<RegisteredSchema>, SchemaError> {
        Ok(self.state.lock().by_id(id))
    }

    fn latest(&self, subject: &str) -> Result<Option<RegisteredSchema>, SchemaError> {
        Ok(self.state.lock().latest(subject))
    }

    fn subjects(&self) -> Result<Vec<String>, SchemaError> {
        Ok(self.state.lock().subjects())
    }

    fn versions(&self, subject: &str) -> Result<Vec<RegisteredSchema>, SchemaError> {
        Ok(self.state.lock().versions(subject))
    }
}

/// Registry persisted as `<dir>/registry.json`, rewritten atomically on every change.
///
/// One process owns the directory (embedded mode); two processes registering concurrently in the
/// same directory could lose a registration, so the embedded runtime must hold its directory lock.
#[derive(Debug)]
pub struct EmbeddedRegistry {
    path: PathBuf,
    state: Mutex<RegistryState>,
}

/// File name of the embedded registry inside its directory.
pub const REGISTRY_FILE: &str = "registry.json";

impl EmbeddedRegistry {
    /// Opens the registry in `dir` (created if missing), loading `registry.json` if present.
    pub fn open(dir: &Path) -> Result<EmbeddedRegistry, SchemaError> {
        fs::create_dir_all(dir).map_err(|source| SchemaError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(REGISTRY_FILE);
        let state = match fs::read(&path) {
            Ok(bytes) => {
                let state: RegistryState =
                    serde_json::from_slice(&bytes).map_err(|e| SchemaError::Corrupt {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                state.validate().map_err(|reason| SchemaError::Corrupt {
                    path: path.clone(),
                    reason,
                })?;
                state
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RegistryState::new(),
            Err(source) => return Err(SchemaError::Io { path, source }),
        };
        Ok(EmbeddedRegistry {
            path,
            state: Mutex::new(state),
        })
    }

    /// Path of the backing file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write temp, fsync, rename, fsync the directory: a crash leaves the old or the new file.
    fn persist(&self, state: &RegistryState) -> Result<(), SchemaError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SchemaError::Io { path, source }
        };
        let json = serde_json::to_vec_pretty(state).map_err(|e| SchemaError::Corrupt {
            path: self.path.clone(),
            reason: format!("cannot serialize registry: {e}"),
        })?;
        let tmp = self.path.with_extension("json.tmp");
        let mut file = File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(&json).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        drop(file);
        fs::rename(&tmp, &self.path).map_err(io(&self.path))?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io(dir))?;
        }
        Ok(())
    }
}

impl SchemaRegistry for EmbeddedRegistry {
    fn register(&self, subject: &str, schema_json: &str) -> Result<u32, SchemaError> {
        let mut state = self.state.lock();
        // Register on a copy so a failed write leaves memory equal to the file.
        let mut next = state.clone();
        let (id, changed) = next.register(subject, schema_json)?;
        if changed {
            self.persist(&next)?;
            *state = next;
        }
        Ok(id)
    }

    fn schema_by_id(&self, id: u32) -> Result<Option<RegisteredSchema>, SchemaError> {
        Ok(self.state.lock().by_id(id))
    }

    fn latest(&self, subject: &str) -> Result<Option<RegisteredSchema>, SchemaError> {
        Ok(self.state.lock().latest(subject))
    }

    fn subjects(&self) -> Result<Vec<String>, SchemaError> {
        Ok(self.state.lock().subjects())
    }

    fn versions(&self, subject: &str) -> Result<Vec<RegisteredSchema>, SchemaError> {
        Ok(self.state.lock().versions(subject))
    }
}
