//! `GET /openapi.json` (an OpenAPI 3.0 document of every route, written by hand: a derive crate
//! would cost more build time than the dozen routes are worth) and `GET /docs`, a self-contained
//! page that renders it (no CDN: dashboards run on plant networks).

use axum::response::Html;
use axum::Json;
use serde_json::{json, Value};

use super::routes::VERSION;

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    })
}

fn json_response(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// The OpenAPI document.
pub fn openapi_document() -> Value {
    let statuses = json!({
        "type": "object",
        "properties": {
            "IDLE": {"type": "integer"}, "RUNNING": {"type": "integer"}, "WARNING": {"type": "integer"},
            "ERROR": {"type": "integer"}, "MAINTENANCE": {"type": "integer"}, "OFFLINE": {"type": "integer"}
        }
    });
    let num = json!({"type": "number"});
    let int = json!({"type": "integer"});
    let string = json!({"type": "string"});
    let time = json!({"type": "string", "format": "date-time"});
    let opt_num = json!({"type": "number", "nullable": true});
    let machine_state = json!({
        "type": "object",
        "properties": {
            "machine_id": string, "status": {"type": "string", "enum": ["IDLE","RUNNING","WARNING","ERROR","MAINTENANCE","OFFLINE"]},
            "health_score": num, "cycles": int, "defects": int, "parts_inspected": int, "defect_rate": num,
            "temperature": opt_num, "vibration": opt_num, "pressure": opt_num, "speed": opt_num,
            "last_seen": time, "updated_at": time, "reason": string
        }
    });
    let urgency = json!({"type": "string", "enum": ["CRITICAL", "HIGH", "MEDIUM", "LOW"]});
    // Field names of the failure-predictions record, `event_time` shown as `predicted_at`.
    let prediction = json!({
        "type": "object",
        "properties": {
            "event_id": string, "machine_id": string, "failure_probability": num,
            "time_to_failure_hours": num, "urgency": urgency, "probability_1d": num,
            "probability_3d": num, "probability_7d": num, "rul_hours": opt_num,
            "recommended_action": string, "predicted_at": time,
            "model_versions": {"type": "object", "additionalProperties": string},
            "top_features": {"type": "array", "items": {"type": "object", "properties": {
                "name": string, "value": num, "contribution": num
            }}}
        }
    });
    let read = json!([{}, {"bearer": []}]);
    let write = json!([{"bearer": []}]);
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "twinline read API",
            "version": VERSION,
            "description": "Factory digital twin: live state, dashboard statistics, read-only SQL over the stream views, ingest of input events. Errors are {error, detail, type}."
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "detail", "type"],
                    "properties": { "error": string, "detail": string, "type": string }
                },
                "MachineState": machine_state,
                "FactoryState": {
                    "type": "object",
                    "properties": {
                        "factory_id": string, "timestamp": time,
                        "machines": {"type": "array", "items": schema_ref("MachineState")},
                        "statistics": {"type": "object", "properties": {
                            "total_machines": int, "status_counts": statuses, "average_health": num,
                            "total_cycles": int, "total_defects": int, "parts_inspected": int, "defect_rate": num
                        }}
                    }
                },
                "MachineDetail": {
                    "allOf": [schema_ref("MachineState"), {"type": "object", "properties": {
                        "history": {"type": "array", "items": {"type": "object", "properties": {
                            "event_id": string, "event_time": time, "status": string,
                            "health_score": num, "cycles": int, "defects": int, "reason": string
                        }}}
                    }}]
                },
                "DashboardStats": {
                    "type": "object",
                    "properties": {
                        "timestamp": time, "overall_health": num, "total_machines": int,
                        "status_breakdown": statuses, "total_cycles": int, "total_defects": int,
                        "parts_inspected": int, "defect_rate": num,
                        "maintenance_alerts": {"type": "object", "properties": {
                            "critical": int, "high": int, "medium": int, "low": int, "open_requests": int
                        }}
                    }
                },
                "Prediction": prediction,
                "LatestPrediction": {
                    "allOf": [schema_ref("Prediction"), {"type": "object", "properties": {
                        "maintenance_request_open": {"type": "boolean"}
                    }}]
                },
                "PredictionList": {
                    "type": "object",
                    "properties": {
                        "timestamp": time,
                        "total": {"type": "integer", "description": "machines matching the filter, before limit"},
                        "predictions": {"type": "array", "items": schema_ref("LatestPrediction")}
                    }
                },
                "OpenRequest": {
                    "type": "object",
                    "properties": {
                        "request_id": string, "event_id": string, "machine_id": string, "urgency": urgency,
                        "reason": string, "opened_at": time, "prediction_event_id": {"type": "string", "nullable": true}
                    }
                },
                "MachinePredictions": {
                    "type": "object",
                    "properties": {
                        "machine_id": string,
                        "latest": {"allOf": [schema_ref("LatestPrediction")], "nullable": true},
                        "history": {"type": "array", "items": schema_ref("Prediction"), "description": "newest first"},
                        "open_request": {"allOf": [schema_ref("OpenRequest")], "nullable": true}
                    }
                },
                "QueryRequest": {
                    "type": "object", "required": ["sql"],
                    "properties": { "sql": string, "max_rows": {"type": "integer", "minimum": 0} }
                },
                "QueryResponse": {
                    "type": "object",
                    "properties": {
                        "columns": {"type": "array", "items": {"type": "object", "properties": {"name": string, "type": string}}},
                        "rows": {"type": "array", "items": {"type": "object"}},
                        "row_count": int, "truncated": {"type": "boolean"}, "elapsed_ms": num
                    }
                },
                "IngestAck": {
                    "type": "object",
                    "properties": { "topic": string, "partition": int, "offset": int }
                }
            }
        },
        "paths": {
            "/health": { "get": {
                "summary": "Service health and the newest event time",
                "security": read,
                "responses": { "200": json_response("healthy", json!({"type": "object", "properties": {
                    "status": string, "version": string, "timestamp": {"type": "string", "format": "date-time", "nullable": true}
                }})) }
            }},
            "/health/live": { "get": {
                "summary": "Liveness probe",
                "responses": { "200": json_response("alive", json!({"type": "object"})) }
            }},
            "/health/ready": { "get": {
                "summary": "Readiness probe (pipeline recovered and processing)",
                "responses": {
                    "200": json_response("ready", json!({"type": "object"})),
                    "503": json_response("not ready", json!({"type": "object"}))
                }
            }},
            "/metrics": { "get": {
                "summary": "Prometheus metrics (text format 0.0.4)",
                "security": read,
                "responses": { "200": { "description": "metrics", "content": { "text/plain; version=0.0.4": { "schema": string } } } }
            }},
            "/api/v1/digital-twin/state": { "get": {
                "summary": "Current state of every machine and factory statistics",
                "security": read,
                "responses": { "200": json_response("state", schema_ref("FactoryState")), "401": error_response("token required") }
            }},
            "/api/v1/digital-twin/machines/{id}": { "get": {
                "summary": "One machine's state and recent twin-state history (newest last)",
                "security": read,
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": string}],
                "responses": { "200": json_response("machine", schema_ref("MachineDetail")), "404": error_response("unknown machine") }
            }},
            "/api/v1/dashboard/stats": { "get": {
                "summary": "Dashboard statistics and maintenance alerts",
                "security": read,
                "responses": { "200": json_response("stats", schema_ref("DashboardStats")) }
            }},
            "/api/v1/predictive/predictions": { "get": {
                "summary": "Latest failure prediction of every machine: CRITICAL first, then by failure_probability (highest first), then by machine_id",
                "security": read,
                "parameters": [
                    {"name": "urgency", "in": "query", "required": false, "description": "only this urgency (any case)",
                        "schema": {"type": "string", "enum": ["CRITICAL", "HIGH", "MEDIUM", "LOW", "critical", "high", "medium", "low"]}},
                    {"name": "limit", "in": "query", "required": false, "description": "at most this many predictions (default: all)",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 10000}}
                ],
                "responses": {
                    "200": json_response("predictions", schema_ref("PredictionList")),
                    "400": error_response("invalid_parameter: unknown urgency or bad limit"),
                    "401": error_response("token required")
                }
            }},
            "/api/v1/predictive/machines/{id}": { "get": {
                "summary": "One machine's latest failure prediction, recent predictions (newest first) and open maintenance request",
                "security": read,
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": string}],
                "responses": { "200": json_response("machine predictions", schema_ref("MachinePredictions")), "404": error_response("unknown machine") }
            }},
            "/api/v1/query": { "post": {
                "summary": "Read-only SQL over the views (SELECT, WITH, EXPLAIN, SHOW, DESCRIBE)",
                "description": "Tables: twin_state, twin_state_history, sensor_readings, defects, dead_letters, failure_predictions, maintenance_requests, schedule (the current plan), schedule_changes (every move of every plan); information_schema is available. Send Accept: application/vnd.apache.arrow.stream for an Arrow IPC stream.",
                "security": read,
                "requestBody": { "required": true, "content": { "application/json": { "schema": schema_ref("QueryRequest") } } },
                "responses": {
                    "200": { "description": "rows", "content": {
                        "application/json": { "schema": schema_ref("QueryResponse") },
                        "application/vnd.apache.arrow.stream": { "schema": {"type": "string", "format": "binary"} }
                    }},
                    "400": error_response("sql_refused, invalid_sql or query_failed"),
                    "408": error_response("query_timeout"),
                    "415": error_response("not JSON")
                }
            }},
            "/api/v1/ingest/{topic}": { "post": {
                "summary": "Append one event (JSON form) to an input topic",
                "security": write,
                "parameters": [{"name": "topic", "in": "path", "required": true,
                    "schema": {"type": "string", "enum": ["sensor-readings", "images", "job-events", "machine-events"]}}],
                "requestBody": { "required": true, "content": { "application/json": { "schema": {"type": "object"} } } },
                "responses": {
                    "202": json_response("appended", schema_ref("IngestAck")),
                    "401": error_response("missing or invalid token"),
                    "403": error_response("role too low, or a derived topic"),
                    "404": error_response("unknown topic"),
                    "422": error_response("invalid payload")
                }
            }},
            "/api/v1/vision/detect": { "post": {
                "summary": "Inspect one image: it is published to `images` (stamped with the plant's newest event time) and the answer is its `defects` event",
                "security": write,
                "requestBody": { "required": true, "content": { "multipart/form-data": { "schema": {
                    "type": "object", "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "PNG or JPEG (part type image/png or image/jpeg; sniffed when absent)"},
                        "machine_id": {"type": "string", "description": "count the result for this machine's twin (only a machine the twin already tracks); default `upload`, tracked by no twin"}
                    }
                } } } },
                "responses": {
                    "200": json_response("the defect", json!({"type": "object", "properties": {
                        "defect_detected": {"type": "boolean"},
                        "confidence": {"type": "number"},
                        "defect_type": {"type": "string", "enum": ["none", "scratch", "crack", "hole", "stain", "contamination"]},
                        "bbox": {"type": ["object", "null"], "properties": {"x": {"type": "number"}, "y": {"type": "number"}, "width": {"type": "number"}, "height": {"type": "number"}}},
                        "processing_time_ms": {"type": ["number", "null"], "description": "decode + preprocessing + this image's share of its inference batch"},
                        "model_name": {"type": "string"}, "model_version": {"type": "string"},
                        "request_id": {"type": "string"}, "machine_id": {"type": "string"}, "event_id": {"type": "string"},
                        "image": {"type": "object", "description": "where the image landed: topic, partition, offset"},
                        "latency_ms": {"type": "number", "description": "upload to answer, server side"}
                    }})),
                    "400": error_response("invalid_image (undecodable), missing_file, invalid_multipart or invalid_parameter"),
                    "401": error_response("missing or invalid token"),
                    "403": error_response("role below write"),
                    "413": error_response("payload_too_large (request body above the limit, 16 MiB)"),
                    "415": error_response("unsupported_media_type: not multipart/form-data, or a file that is not PNG or JPEG"),
                    "503": error_response("model_unavailable (no defect model loaded) or ingest_failed"),
                    "504": error_response("detect_timeout: no defect within 30 s")
                }
            }},
            "/api/v1/admin/checkpoint": { "post": {
                "summary": "Checkpoint every task now",
                "security": write,
                "responses": { "200": json_response("checkpointed", json!({"type": "object"})), "403": error_response("admin role required") }
            }},
            "/api/v1/ws/stream": { "get": {
                "summary": "WebSocket: hello, then {type: twin_state|dashboard_stats, sent_at_ms, data} on connect and after changes, at most once per push interval per client, and {type: predictions|schedule, sent_at_ms, data} (the predictions list, the current plan) on connect once they exist and in the first push after each new prediction or plan; sent_at_ms is the server wall clock (Unix ms) when the push was rendered",
                "security": read,
                "responses": { "101": { "description": "switching protocols" } }
            }},
            "/api/v1/scheduling/schedule": { "get": {
                "summary": "The current production plan (the newest schedule-changes event)",
                "security": read,
                "responses": {
                    "200": json_response("plan", json!({
                        "type": "object",
                        "properties": {
                            "plan_version": int, "planned_at": time, "reason": string, "event_id": string,
                            "source": {"type": "object", "properties": {"topic": string, "partition": int, "offset": int}},
                            "makespan_ms": int, "objective": num, "moved_operations": int,
                            "operations": {"type": "array", "items": {"type": "object", "properties": {
                                "job_id": string, "operation_index": int, "machine_id": string,
                                "start": time, "end": time, "started": {"type": "boolean"}}}}
                        }
                    })),
                    "404": error_response("no_plan: nothing planned yet")
                }
            }},
            "/api/v1/scheduling/optimize": { "post": {
                "summary": "Solve a job-shop problem (simple form: jobs with processing_time and priority on any of `machines`; rich form: jobs with operations and eligible machines, release and due dates, machine unavailability); does not change the plant's plan",
                "security": read,
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "required": ["jobs"],
                    "properties": {
                        "jobs": {"type": "array", "items": {"type": "object", "required": ["job_id"], "properties": {
                            "job_id": string, "processing_time": int, "machine_id": string, "priority": num,
                            "release_time": int, "due_date": int,
                            "operations": {"type": "array", "items": {"type": "object", "properties": {
                                "eligible": {"type": "array", "items": {"type": "object", "properties": {
                                    "machine_id": string, "processing_time": int}}}}}}}}},
                        "machines": {"type": "array", "items": string},
                        "unavailability": {"type": "array", "items": {"type": "object", "properties": {
                            "machine_id": string, "start": int, "end": int}}},
                        "objective": {"type": "string", "enum": ["makespan", "weighted_tardiness"]},
                        "time_limit_ms": int, "threads": int, "seed": int
                    }
                } } } },
                "responses": {
                    "200": json_response("plan", json!({
                        "type": "object",
                        "properties": {
                            "schedule": {"type": "array", "items": {"type": "object", "properties": {
                                "job_id": string, "operation_index": int, "machine_id": string, "start": int, "end": int}}},
                            "makespan": int, "solver_time_ms": int, "optimal": {"type": "boolean"},
                            "lower_bound": int, "gap_to_lower_bound": {"type": "number", "nullable": true},
                            "objective": string, "objective_value": num, "time_to_best_ms": int
                        }
                    })),
                    "422": error_response("malformed_problem, invalid_problem or infeasible, with the reason"),
                    "429": error_response("solver_busy: another optimize is running")
                }
            }},
            "/api/v1/scheduling/rl/predict": { "post": {
                "summary": "Plan waiting jobs at once with the learned dispatching policy (PPO, models/rl) on the machines as they are: a down machine (ERROR, MAINTENANCE, OFFLINE) without available_at gets nothing, a busy or down one nothing before available_at, nothing starts before now. assignments: per machine with work, the operation it should take next. Jobs take the optimize forms; default machines: the twin's, with their status; rollouts 1 = greedy, up to 256 = best of that many (the first greedy, the rest sampled with seed)",
                "security": read,
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "required": ["jobs"],
                    "properties": {
                        "jobs": {"type": "array", "items": {"type": "object", "description": "as in /api/v1/scheduling/optimize"}},
                        "machines": {"type": "array", "items": {"oneOf": [string, {"type": "object", "required": ["machine_id"], "properties": {
                            "machine_id": string, "status": string, "available_at": int}}]}},
                        "unavailability": {"type": "array", "items": {"type": "object", "properties": {
                            "machine_id": string, "start": int, "end": int}}},
                        "now": int, "rollouts": int, "seed": int
                    }
                } } } },
                "responses": {
                    "200": json_response("recommended assignments and the plan", json!({
                        "type": "object",
                        "properties": {
                            "assignments": {"type": "array", "items": {"type": "object", "properties": {
                                "machine_id": string, "job_id": string, "operation_index": int, "start": int, "end": int}}},
                            "schedule": {"type": "array", "items": {"type": "object", "properties": {
                                "job_id": string, "operation_index": int, "machine_id": string, "start": int, "end": int}}},
                            "makespan": int, "lower_bound": int, "gap_to_lower_bound": {"type": "number", "nullable": true},
                            "method": string, "model": {"type": "object", "properties": {"name": string, "version": string}},
                            "rollouts": int, "decisions": int, "inference_time_ms": num
                        }
                    })),
                    "422": error_response("malformed_problem, invalid_problem (a machine listed twice, an unknown status or machine, every eligible machine down, too many operations x rollouts) or infeasible, with the reason"),
                    "429": error_response("policy_busy: another rl/predict is planning"),
                    "500": error_response("policy_failed: the model failed or its plan was rejected by the verifier"),
                    "503": error_response("no_model: no dispatching policy loaded")
                }
            }},
            "/openapi.json": { "get": { "summary": "This document", "responses": { "200": json_response("OpenAPI 3", json!({"type": "object"})) } } },
            "/docs": { "get": { "summary": "API documentation page", "responses": { "200": { "description": "HTML" } } } },
            "/": { "get": { "summary": "Dashboard", "responses": { "200": { "description": "HTML" } } } },
            "/3d": { "get": { "summary": "3D dashboard view", "responses": { "200": { "description": "HTML" } } } },
            "/assets/{path}": { "get": {
                "summary": "Dashboard assets",
                "parameters": [{"name": "path", "in": "path", "required": true, "schema": string}],
                "responses": { "200": { "description": "file" }, "404": error_response("no such asset") }
            }}
        }
    })
}

pub async fn openapi() -> Json<Value> {
    Json(openapi_document())
}

const DOCS_HTML: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>twinline API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#1b1f23}
h1{margin-bottom:.2rem} .op{border:1px solid #d0d7de;border-radius:6px;margin:.6rem 0;padding:.5rem .8rem}
.m{display:inline-block;min-width:3.6rem;font-weight:700;font-family:monospace}
.get{color:#0969da}.post{color:#1a7f37} code{background:#f6f8fa;padding:0 .25rem}
.codes{color:#57606a;font-size:.9em} textarea{width:100%;font-family:monospace} pre{background:#f6f8fa;padding:.6rem;overflow:auto;max-height:24rem}
</style></head><body>
<h1>twinline read API</h1><p id="desc">Loading <a href="/openapi.json">/openapi.json</a>...</p>
<div id="ops"></div>
<h2>Try SQL</h2>
<textarea id="sql" rows="3">SELECT machine_id, status, health_score FROM twin_state ORDER BY machine_id</textarea>
<button id="run">Run</button><pre id="out"></pre>
<script>
fetch('/openapi.json').then(r=>r.json()).then(doc=>{
  document.getElementById('desc').textContent=doc.info.description+' (version '+doc.info.version+')';
  const ops=document.getElementById('ops');
  for(const [path,item] of Object.entries(doc.paths)){
    for(const [method,op] of Object.entries(item)){
      const d=document.createElement('div');d.className='op';
      const m=document.createElement('span');m.className='m '+method;m.textContent=method.toUpperCase();
      const p=document.createElement('code');p.textContent=path;
      const s=document.createElement('div');s.textContent=op.summary||'';
      const c=document.createElement('div');c.className='codes';
      c.textContent='responses: '+Object.keys(op.responses||{}).join(', ')+(op.security&&op.security.length&&Object.keys(op.security[0]).length?' (token required)':'');
      d.append(m,p,s,c);if(op.description){const x=document.createElement('div');x.textContent=op.description;d.append(x);}
      ops.append(d);
    }
  }
}).catch(e=>{document.getElementById('desc').textContent='cannot load /openapi.json: '+e});
document.getElementById('run').onclick=()=>{
  fetch('/api/v1/query',{method:'POST',headers:{'Content-Type':'application/json'},
    body:JSON.stringify({sql:document.getElementById('sql').value,max_rows:200})})
  .then(r=>r.json()).then(j=>{document.getElementById('out').textContent=JSON.stringify(j,null,2)})
  .catch(e=>{document.getElementById('out').textContent=String(e)});
};
</script></body></html>
"#;

pub async fn docs_page() -> Html<&'static str> {
    Html(DOCS_HTML)
}
