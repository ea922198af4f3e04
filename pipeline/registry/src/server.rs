//! The Confluent Schema Registry REST API (the subset Avro clients use) over any
//! [`SchemaRegistry`]: what `twinline registry` serves.
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | `{}` |
//! | `GET /schemas/types` | `["AVRO"]` |
//! | `GET /subjects` | subject names |
//! | `GET /subjects/{s}/versions` | version numbers |
//! | `GET /subjects/{s}/versions/{v}` (`v` = n, `latest` or `-1`) | `{subject, id, version, schema}` |
//! | `GET /subjects/{s}/versions/{v}/schema` | the schema itself |
//! | `POST /subjects/{s}/versions` `{schema[, schemaType]}` | `{id}` (registers, or the existing id) |
//! | `POST /subjects/{s}` `{schema}` | `{subject, id, version, schema}` of that schema in `s` |
//! | `GET /schemas/ids/{id}` | `{schema}` |
//! | `GET /schemas/ids/{id}/schema` | the schema itself |
//! | `GET /schemas/ids/{id}/versions` | `[{subject, version}]` |
//! | `GET /schemas/ids/{id}/subjects` | subject names |
//! | `POST /compatibility/subjects/{s}/versions[/{v}]` `{schema}` | `{is_compatible[, messages]}` |
//! | `GET /config`, `GET /config/{s}` | `{compatibilityLevel: "BACKWARD_TRANSITIVE"}` |
//! | `PUT /config[/{s}]` `{compatibility}` | accepted only for `BACKWARD_TRANSITIVE` |
//! | `GET /mode` | `{mode: "READWRITE"}` |
//!
//! Errors are Confluent's: HTTP status plus `{"error_code", "message"}` with 40401 (subject not
//! found), 40402 (version not found), 40403 (schema not found), 409 (incompatible), 42201 (invalid
//! schema or unsupported schema type / references), 42202 (invalid version), 42203 (invalid
//! compatibility level), 50001 (the store failed), 405 (deletes: schemas are never deleted here).
//! Bodies are read as JSON whatever their content type (clients send
//! `application/vnd.schemaregistry.v1+json`), and answers carry that content type.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use twinline_schemas::{same_schema, SchemaError, SchemaRegistry};

/// The compatibility level every subject has (see `twinline_schemas::registry`).
pub const COMPATIBILITY: &str = "BACKWARD_TRANSITIVE";
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

type Registry = Arc<dyn SchemaRegistry>;

/// The API's router over `registry`.
pub fn router(registry: Registry) -> Router {
    Router::new()
        .route("/", get(|| async { reply(json!({})) }))
        .route("/schemas/types", get(|| async { reply(json!(["AVRO"])) }))
        .route("/subjects", get(subjects))
        .route(
            "/subjects/{subject}",
            post(lookup).delete(|| async { no_deletes() }),
        )
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route(
            "/subjects/{subject}/versions/{version}",
            get(version).delete(|| async { no_deletes() }),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(version_schema),
        )
        .route("/schemas/ids/{id}", get(by_id))
        .route("/schemas/ids/{id}/schema", get(by_id_schema))
        .route("/schemas/ids/{id}/versions", get(id_versions))
        .route("/schemas/ids/{id}/subjects", get(id_subjects))
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compatibility_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatibility),
        )
        .route("/config", get(config).put(set_config))
        .route("/config/{subject}", get(config).put(set_config))
        .route(
            "/mode",
            get(|| async { reply(json!({"mode": "READWRITE"})) }),
        )
        .with_state(registry)
}

/// A Confluent-style error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: u32,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    fn subject_not_found(subject: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            40401,
            format!("Subject '{subject}' not found."),
        )
    }
    fn version_not_found(subject: &str, version: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            40402,
            format!("Version {version} not found for subject '{subject}'."),
        )
    }
    fn schema_not_found(what: String) -> Self {
        Self::new(StatusCode::NOT_FOUND, 40403, what)
    }
    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, 42201, message)
    }
}

impl From<SchemaError> for ApiError {
    fn from(e: SchemaError) -> Self {
        match &e {
            SchemaError::Incompatible { .. } => Self::new(
                StatusCode::CONFLICT,
                409,
                format!("Schema being registered is incompatible with an earlier schema: {e}"),
            ),
            SchemaError::InvalidSchema { .. } => Self::invalid(format!("Invalid schema: {e}")),
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, 50001, e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error_code": self.code, "message": self.message}).to_string();
        (self.status, [(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
    }
}

fn reply(v: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        v.to_string(),
    )
        .into_response()
}

fn no_deletes() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        405,
        "Deleting subjects or versions is not supported: ids stay valid for every record ever \
         written with them.",
    )
}

/// Runs a registry call off the async workers (the store may do blocking I/O).
async fn blocking<T: Send + 'static>(
    registry: &Registry,
    f: impl FnOnce(&dyn SchemaRegistry) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let r = registry.clone();
    tokio::task::spawn_blocking(move || f(r.as_ref()))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                50001,
                format!("registry call failed: {e}"),
            )
        })?
}

#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
    #[serde(default, rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Value>,
}

fn parse_body(body: &Bytes) -> Result<SchemaBody, ApiError> {
    let b: SchemaBody = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(format!(
            "The body must be a JSON object with a \"schema\" string: {e}"
        ))
    })?;
    if let Some(t) = &b.schema_type {
        if !t.eq_ignore_ascii_case("AVRO") {
            return Err(ApiError::invalid(format!(
                "Schema type {t} is not supported: this registry holds Avro schemas only."
            )));
        }
    }
    if !b.references.is_empty() {
        return Err(ApiError::invalid(
            "Schema references are not supported: register self-contained schemas.",
        ));
    }
    Ok(b)
}

fn schema_doc(s: &twinline_schemas::RegisteredSchema) -> Value {
    json!({"subject": s.subject, "id": s.id, "version": s.version, "schema": s.schema})
}

/// Resolves `v` (`latest`, `-1` or a positive number) in `subject`.
fn pick_version(
    r: &dyn SchemaRegistry,
    subject: &str,
    v: &str,
) -> Result<twinline_schemas::RegisteredSchema, ApiError> {
    let versions = r.versions(subject)?;
    if versions.is_empty() {
        return Err(ApiError::subject_not_found(subject));
    }
    let found = if v == "latest" || v == "-1" {
        versions.iter().max_by_key(|s| s.version)
    } else {
        let n: u32 = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                42202,
                format!(
                    "The specified version '{v}' is not a valid version id. Allowed values are \
                     between [1, 2^31-1] and the string \"latest\""
                ),
            )
        })?;
        versions.iter().find(|s| s.version == n)
    };
    found
        .cloned()
        .ok_or_else(|| ApiError::version_not_found(subject, v))
}

async fn subjects(State(r): State<Registry>) -> Result<Response, ApiError> {
    let s = blocking(&r, |r| Ok(r.subjects()?)).await?;
    Ok(reply(json!(s)))
}

async fn versions(
    State(r): State<Registry>,
    Path(subject): Path<String>,
) -> Result<Response, ApiError> {
    let v = blocking(&r, move |r| {
        let v = r.versions(&subject)?;
        if v.is_empty() {
            return Err(ApiError::subject_not_found(&subject));
        }
        Ok(v.iter().map(|s| s.version).collect::<Vec<_>>())
    })
    .await?;
    Ok(reply(json!(v)))
}

async fn version(
    State(r): State<Registry>,
    Path((subject, v)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let s = blocking(&r, move |r| pick_version(r, &subject, &v)).await?;
    Ok(reply(schema_doc(&s)))
}

async fn version_schema(
    State(r): State<Registry>,
    Path((subject, v)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let s = blocking(&r, move |r| pick_version(r, &subject, &v)).await?;
    Ok(raw_schema(&s.schema))
}

fn raw_schema(schema: &str) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        schema.to_string(),
    )
        .into_response()
}

async fn register(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b = parse_body(&body)?;
    let id = blocking(&r, move |r| Ok(r.register(&subject, &b.schema)?)).await?;
    Ok(reply(json!({ "id": id })))
}

async fn lookup(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b = parse_body(&body)?;
    let s = blocking(&r, move |r| {
        let versions = r.versions(&subject)?;
        if versions.is_empty() {
            return Err(ApiError::subject_not_found(&subject));
        }
        versions
            .into_iter()
            .find(|s| same_schema(&s.schema, &b.schema))
            .ok_or_else(|| ApiError::schema_not_found("Schema not found".to_string()))
    })
    .await?;
    Ok(reply(schema_doc(&s)))
}

fn find_id(
    r: &dyn SchemaRegistry,
    id: &str,
) -> Result<twinline_schemas::RegisteredSchema, ApiError> {
    let n: u32 = id
        .parse()
        .map_err(|_| ApiError::schema_not_found(format!("Schema {id} not found")))?;
    r.schema_by_id(n)?
        .ok_or_else(|| ApiError::schema_not_found(format!("Schema {n} not found")))
}

async fn by_id(State(r): State<Registry>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let s = blocking(&r, move |r| find_id(r, &id)).await?;
    Ok(reply(json!({ "schema": s.schema })))
}

async fn by_id_schema(
    State(r): State<Registry>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let s = blocking(&r, move |r| find_id(r, &id)).await?;
    Ok(raw_schema(&s.schema))
}

/// Every subject version that is the schema with this id. Ids are global and a schema text
/// registered under two subjects gets two ids here, so this is the one version the id was
/// created for.
async fn id_versions(
    State(r): State<Registry>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let s = blocking(&r, move |r| find_id(r, &id)).await?;
    Ok(reply(
        json!([{ "subject": s.subject, "version": s.version }]),
    ))
}

async fn id_subjects(
    State(r): State<Registry>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let s = blocking(&r, move |r| find_id(r, &id)).await?;
    Ok(reply(json!([s.subject])))
}

/// `{is_compatible}` for `schema` against the versions of `subject` up to `upto` (all when
/// `None`): the level is transitive, so every earlier version counts.
fn check(
    r: &dyn SchemaRegistry,
    subject: &str,
    upto: Option<&str>,
    schema: &str,
) -> Result<Value, ApiError> {
    let mut versions = r.versions(subject)?;
    if let Some(v) = upto {
        let last = pick_version(r, subject, v)?;
        versions.retain(|s| s.version <= last.version);
    }
    let parsed = twinline_schemas::parse_schema(subject, schema)
        .map_err(|e| ApiError::invalid(format!("Invalid schema: {e}")))?;
    Ok(
        match twinline_schemas::check_backward(subject, &versions, &parsed) {
            Ok(()) => json!({"is_compatible": true}),
            Err(e) => json!({"is_compatible": false, "messages": [e.to_string()]}),
        },
    )
}

async fn compatibility(
    State(r): State<Registry>,
    Path((subject, v)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b = parse_body(&body)?;
    let out = blocking(&r, move |r| check(r, &subject, Some(&v), &b.schema)).await?;
    Ok(reply(out))
}

async fn compatibility_all(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b = parse_body(&body)?;
    let out = blocking(&r, move |r| check(r, &subject, None, &b.schema)).await?;
    Ok(reply(out))
}

async fn config() -> Response {
    reply(json!({ "compatibilityLevel": COMPATIBILITY }))
}

async fn set_config(body: Bytes) -> Result<Response, ApiError> {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match v.get("compatibility").and_then(Value::as_str) {
        Some(level) if level.eq_ignore_ascii_case(COMPATIBILITY) => {
            Ok(reply(json!({ "compatibility": COMPATIBILITY })))
        }
        other => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42203,
            format!(
                "Invalid compatibility level {}: this registry enforces {COMPATIBILITY} for \
                 every subject (a new version must read everything written with the earlier ones).",
                other.unwrap_or("(missing)")
            ),
        )),
    }
}
