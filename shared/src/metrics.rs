//! Metrics in CloudWatch Embedded Metric Format: one JSON line per request,
//! written beside the request's log line, which CloudWatch Logs turns into
//! metrics (namespace `Tollgate`) with no extra network call. Built here,
//! without AWS, so a test can parse what the functions print.
//!
//! The line carries no `level`, so Lambda's application log-level filter
//! never drops it: metrics stay whatever the log level.

use serde_json::{json, Map, Value};

pub const NAMESPACE: &str = "Tollgate";

/// What one request contributes.
#[derive(Debug, Clone, Default)]
pub struct RequestMetrics<'a> {
    pub function: &'a str,
    /// The route template (`POST /validate`), or the authorizer event kind.
    pub route: &'a str,
    pub status: u16,
    pub latency_ms: f64,
    /// A validate's or an authorization's outcome: `ACTIVE`, or the
    /// refusal's reason code. `None` for the other routes.
    pub outcome: Option<&'a str>,
    /// The first request this function instance served.
    pub cold_start: bool,
    /// DynamoDB throttled or could not be reached (answered 503, or denied
    /// `UNAVAILABLE` by the authorizer).
    pub unavailable: bool,
    pub request_id: &'a str,
    pub trace_id: Option<&'a str>,
}

fn metric(name: &str, unit: &str) -> Value {
    json!({"Name": name, "Unit": unit})
}

/// The EMF document for one request: latency, requests, server errors and
/// DynamoDB unavailability by function and route; outcomes by function and
/// outcome; cold starts by function.
pub fn emf(m: &RequestMetrics, timestamp_ms: i64) -> Value {
    let mut directives = vec![
        json!({
            "Namespace": NAMESPACE,
            "Dimensions": [["Function", "Route"]],
            "Metrics": [
                metric("Latency", "Milliseconds"),
                metric("Requests", "Count"),
                metric("ServerErrors", "Count"),
                metric("DynamoUnavailable", "Count"),
            ],
        }),
        json!({
            "Namespace": NAMESPACE,
            "Dimensions": [["Function"]],
            "Metrics": [metric("ColdStart", "Count")],
        }),
    ];
    let mut doc = Map::new();
    if let Some(outcome) = m.outcome {
        directives.push(json!({
            "Namespace": NAMESPACE,
            "Dimensions": [["Function", "Outcome"]],
            "Metrics": [metric("Outcomes", "Count")],
        }));
        doc.insert("Outcome".into(), json!(outcome));
        doc.insert("Outcomes".into(), json!(1));
    }
    doc.insert(
        "_aws".into(),
        json!({"Timestamp": timestamp_ms, "CloudWatchMetrics": directives}),
    );
    doc.insert("Function".into(), json!(m.function));
    doc.insert("Route".into(), json!(m.route));
    doc.insert("Latency".into(), json!(m.latency_ms));
    doc.insert("Requests".into(), json!(1));
    doc.insert("ServerErrors".into(), json!(u8::from(m.status >= 500)));
    doc.insert("DynamoUnavailable".into(), json!(u8::from(m.unavailable)));
    doc.insert("ColdStart".into(), json!(u8::from(m.cold_start)));
    // Not metrics: what ties the line to its request and trace.
    doc.insert("status".into(), json!(m.status));
    doc.insert("requestId".into(), json!(m.request_id));
    if let Some(trace) = m.trace_id {
        doc.insert("traceId".into(), json!(trace));
    }
    Value::Object(doc)
}

/// Checks `line` is an EMF document as CloudWatch reads it: `_aws` with a
/// millisecond timestamp and directives whose every dimension and metric
/// names a top-level member (a number, for metrics). Used by the tests.
pub fn check_emf(line: &str) -> Result<Value, String> {
    let doc: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let aws = doc.get("_aws").ok_or("no _aws member")?;
    aws.get("Timestamp")
        .and_then(Value::as_i64)
        .filter(|t| *t > 0)
        .ok_or("_aws.Timestamp is not a positive integer")?;
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .filter(|d| !d.is_empty())
        .ok_or("_aws.CloudWatchMetrics is not a non-empty array")?;
    for d in directives {
        d.get("Namespace")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or("a directive without a Namespace")?;
        for set in d
            .get("Dimensions")
            .and_then(Value::as_array)
            .ok_or("a directive without Dimensions")?
        {
            for name in set.as_array().ok_or("a dimension set is not an array")? {
                let name = name.as_str().ok_or("a dimension name is not a string")?;
                doc.get(name)
                    .and_then(Value::as_str)
                    .ok_or(format!("dimension {name} has no string value"))?;
            }
        }
        for m in d
            .get("Metrics")
            .and_then(Value::as_array)
            .ok_or("a directive without Metrics")?
        {
            let name = m
                .get("Name")
                .and_then(Value::as_str)
                .ok_or("a metric without a Name")?;
            doc.get(name)
                .filter(|v| v.is_number())
                .ok_or(format!("metric {name} has no numeric value"))?;
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_line_is_emf_with_every_member_it_names() {
        let m = RequestMetrics {
            function: "validate",
            route: "POST /validate",
            status: 200,
            latency_ms: 1.5,
            outcome: Some("EXPIRED"),
            cold_start: true,
            request_id: "r-1",
            trace_id: Some("Root=1-5e1b4151-5ac6c58f5b5daa6532d5f7a4"),
            ..Default::default()
        };
        let line = emf(&m, 1_795_356_000_000).to_string();
        let doc = check_emf(&line).unwrap();
        assert_eq!(doc["Outcome"], "EXPIRED");
        assert_eq!(doc["ColdStart"], 1);
        assert_eq!(doc["ServerErrors"], 0);
        assert!(doc.get("level").is_none(), "never filtered by log level");
        let other = emf(
            &RequestMetrics {
                function: "list",
                route: "GET /tokens",
                status: 503,
                unavailable: true,
                ..Default::default()
            },
            1,
        );
        let doc = check_emf(&other.to_string()).unwrap();
        assert_eq!(
            (
                doc["ServerErrors"].as_i64(),
                doc["DynamoUnavailable"].as_i64()
            ),
            (Some(1), Some(1))
        );
        assert!(doc.get("Outcome").is_none());
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"].as_array().unwrap().len(),
            2
        );
    }

    #[test]
    fn a_broken_document_is_refused() {
        assert!(check_emf("{}").is_err());
        assert!(check_emf(r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"T","Dimensions":[["F"]],"Metrics":[{"Name":"L"}]}]},"L":1}"#).is_err());
        assert!(check_emf(r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"T","Dimensions":[["F"]],"Metrics":[{"Name":"L"}]}]},"F":"x","L":"1"}"#).is_err());
        assert!(check_emf(r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"T","Dimensions":[["F"]],"Metrics":[{"Name":"L"}]}]},"F":"x","L":1}"#).is_ok());
    }
}
