//! [`RemoteRegistry`]: the [`SchemaRegistry`] contract over HTTP, against any
//! Confluent-compatible registry (`twinline registry`, Confluent's, Apicurio's `ccompat` API).
//!
//! Registrations and lookups go through `schema_registry_converter`; the one call it lacks
//! (`GET /schemas/ids/{id}/versions`, which says which subject an id belongs to, as the codec
//! must check) is made with the same HTTP client library. Calls block the calling thread; they
//! run on a small runtime of their own, so this is usable from plain threads and from inside
//! async code alike. Registered schemas never change, so answers by id are cached.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use schema_registry_converter::async_impl::schema_registry::{
    get_all_subjects, get_all_versions, get_schema_by_id, get_schema_by_subject_and_version,
    post_schema, SrSettings,
};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{SchemaType, SuppliedSchema};
use serde::Deserialize;
use twinline_schemas::{RegisteredSchema, SchemaError, SchemaRegistry};

/// See the module docs.
pub struct RemoteRegistry {
    url: String,
    settings: SrSettings,
    http: reqwest::Client,
    /// Always `Some` until dropped (taken to shut it down without blocking).
    rt: Option<tokio::runtime::Runtime>,
    by_id: Mutex<HashMap<u32, RegisteredSchema>>,
}

impl std::fmt::Debug for RemoteRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteRegistry")
            .field("url", &self.url)
            .finish()
    }
}

#[derive(Deserialize)]
struct SubjectVersion {
    subject: String,
    version: u32,
}

impl RemoteRegistry {
    /// A client of the registry at `url` (e.g. `http://127.0.0.1:18081`); no request is made yet.
    pub fn new(url: &str, timeout: Duration) -> Result<RemoteRegistry, SchemaError> {
        let url = url.trim_end_matches('/').to_string();
        let err = |reason: String| SchemaError::Remote {
            registry: url.clone(),
            reason,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("registry-client")
            .enable_all()
            .build()
            .map_err(|e| err(format!("runtime: {e}")))?;
        let settings = SrSettings::new_builder(url.clone())
            .set_timeout(timeout)
            .build()
            .map_err(|e| err(e.to_string()))?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| err(e.to_string()))?;
        Ok(RemoteRegistry {
            url,
            settings,
            http,
            rt: Some(rt),
            by_id: Mutex::new(HashMap::new()),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn run<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T, SchemaError> {
        let rt = self.rt.as_ref().expect("runtime lives until drop");
        futures::executor::block_on(rt.spawn(fut)).map_err(|e| SchemaError::Remote {
            registry: self.url.clone(),
            reason: format!("request task failed: {e}"),
        })
    }

    /// Maps a client error to ours, keeping the registry's own message.
    fn map_err(&self, subject: &str, e: SRCError) -> SchemaError {
        let cause = e.cause.clone().unwrap_or_default();
        let message = cause
            .split_once("message: ")
            .map(|(_, m)| m.to_string())
            .unwrap_or_else(|| e.to_string());
        if cause.starts_with("error_code: 409") {
            SchemaError::Incompatible {
                subject: subject.to_string(),
                reason: format!("the registry at {} refused it: {message}", self.url),
            }
        } else if cause.starts_with("error_code: 422") {
            SchemaError::InvalidSchema {
                subject: subject.to_string(),
                reason: format!("the registry at {} refused it: {message}", self.url),
            }
        } else {
            SchemaError::Remote {
                registry: self.url.clone(),
                reason: e.to_string(),
            }
        }
    }

    fn not_found(e: &SRCError) -> bool {
        e.cause
            .as_deref()
            .is_some_and(|c| c.starts_with("error_code: 404"))
    }
}

impl Drop for RemoteRegistry {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which is refused inside async code: let it go instead.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl SchemaRegistry for RemoteRegistry {
    fn register(&self, subject: &str, schema_json: &str) -> Result<u32, SchemaError> {
        let settings = self.settings.clone();
        let (s, schema) = (subject.to_string(), schema_json.to_string());
        let out = self.run(async move {
            post_schema(
                &settings,
                s,
                SuppliedSchema::new(None, SchemaType::Avro, schema),
            )
            .await
        })?;
        out.map(|r| r.id).map_err(|e| self.map_err(subject, e))
    }

    fn schema_by_id(&self, id: u32) -> Result<Option<RegisteredSchema>, SchemaError> {
        if let Some(s) = self.by_id.lock().get(&id) {
            return Ok(Some(s.clone()));
        }
        let settings = self.settings.clone();
        let schema = match self.run(async move { get_schema_by_id(id, &settings).await })? {
            Ok(s) => s.schema,
            Err(e) if Self::not_found(&e) => return Ok(None),
            Err(e) => return Err(self.map_err("", e)),
        };
        let http = self.http.clone();
        let url = format!("{}/schemas/ids/{id}/versions", self.url);
        let versions = self.run(async move {
            let resp = http.get(&url).send().await?.error_for_status()?;
            resp.json::<Vec<SubjectVersion>>().await
        })?;
        let versions = versions.map_err(|e| SchemaError::Remote {
            registry: self.url.clone(),
            reason: format!("which subject schema id {id} belongs to: {e}"),
        })?;
        let Some(first) = versions.into_iter().next() else {
            return Ok(None);
        };
        let s = RegisteredSchema {
            id,
            subject: first.subject,
            version: first.version,
            schema,
        };
        self.by_id.lock().insert(id, s.clone());
        Ok(Some(s))
    }

    fn latest(&self, subject: &str) -> Result<Option<RegisteredSchema>, SchemaError> {
        let settings = self.settings.clone();
        let s = subject.to_string();
        match self
            .run(async move { get_schema_by_subject_and_version(&settings, &s, None).await })?
        {
            Ok(r) => Ok(Some(RegisteredSchema {
                id: r.id,
                subject: subject.to_string(),
                version: r.version.unwrap_or(0),
                schema: r.schema,
            })),
            Err(e) if Self::not_found(&e) => Ok(None),
            Err(e) => Err(self.map_err(subject, e)),
        }
    }

    fn subjects(&self) -> Result<Vec<String>, SchemaError> {
        let settings = self.settings.clone();
        let mut s = self
            .run(async move { get_all_subjects(&settings).await })?
            .map_err(|e| self.map_err("", e))?;
        s.sort();
        Ok(s)
    }

    fn versions(&self, subject: &str) -> Result<Vec<RegisteredSchema>, SchemaError> {
        let settings = self.settings.clone();
        let s = subject.to_string();
        let numbers = match self.run(async move { get_all_versions(&settings, s).await })? {
            Ok(v) => v,
            Err(e) if Self::not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(self.map_err(subject, e)),
        };
        let mut out = Vec::with_capacity(numbers.len());
        for v in numbers {
            let settings = self.settings.clone();
            let s = subject.to_string();
            let r = self
                .run(
                    async move { get_schema_by_subject_and_version(&settings, &s, Some(v)).await },
                )?
                .map_err(|e| self.map_err(subject, e))?;
            out.push(RegisteredSchema {
                id: r.id,
                subject: subject.to_string(),
                version: v,
                schema: r.schema,
            });
        }
        Ok(out)
    }
}
