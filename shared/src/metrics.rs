//! Metrics in CloudWatch Embedded Metric Format: one JSON line per request,
//! written beside the request's log line, which CloudWatch Logs turns into
//! metrics with no extra network call. Every metric carries a `Service`
//! dimension (the stack's name) in a configurable namespace (`Tollgate` by
//! default), so two stacks in one account never merge their metrics. Built
//! here, without AWS, so a test can parse what the functions print.
//!
//! The line carries no `level`, so Lambda's application log-level filter
//! never drops it: metrics stay whatever the log level.

use serde_json::Value;

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

/// The namespace when none is configured.
pub const DEFAULT_NAMESPACE: &str = "Tollgate";

/// How this deployment writes its EMF lines: the namespace and the
/// `Service` dimension's value, with the directives (the same for every
/// request but the outcome's) written once as text.
#[derive(Debug, Clone)]
pub struct Emf {
    directives: String,
    outcome_directive: String,
    service: String,
}

impl Default for Emf {
    fn default() -> Self {
        Emf::new(DEFAULT_NAMESPACE, "tollgate")
    }
}

impl Emf {
    pub fn new(namespace: &str, service: &str) -> Emf {
        let ns = quoted(namespace);
        Emf {
            directives: format!(
                concat!(
                    r#"{{"Namespace":{ns},"Dimensions":[["Service","Function","Route"]],"Metrics":["#,
                    r#"{{"Name":"Latency","Unit":"Milliseconds"}},{{"Name":"Requests","Unit":"Count"}},"#,
                    r#"{{"Name":"ServerErrors","Unit":"Count"}},{{"Name":"DynamoUnavailable","Unit":"Count"}}]}},"#,
                    r#"{{"Namespace":{ns},"Dimensions":[["Service","Function"]],"Metrics":[{{"Name":"ColdStart","Unit":"Count"}}]}}"#
                ),
                ns = ns
            ),
            outcome_directive: format!(
                r#",{{"Namespace":{ns},"Dimensions":[["Service","Function","Outcome"]],"Metrics":[{{"Name":"Outcomes","Unit":"Count"}}]}}"#
            ),
            service: quoted(service),
        }
    }

    /// The EMF line for one request: latency, requests, server errors and
    /// DynamoDB unavailability by function and route; outcomes by function
    /// and outcome; cold starts by function; each also by service. Written
    /// as text (one allocation, no JSON tree): it is on every request's path.
    pub fn line(&self, m: &RequestMetrics, timestamp_ms: i64) -> String {
        use std::fmt::Write;
        let mut line = String::with_capacity(832);
        let outcome_directive = if m.outcome.is_some() {
            self.outcome_directive.as_str()
        } else {
            ""
        };
        let _ = write!(
            line,
            r#"{{"_aws":{{"Timestamp":{timestamp_ms},"CloudWatchMetrics":[{}{outcome_directive}]}},"Service":{},"Function":{},"Route":{},"Latency":{},"Requests":1,"ServerErrors":{},"DynamoUnavailable":{},"ColdStart":{},"status":{},"requestId":{}"#,
            self.directives,
            self.service,
            quoted(m.function),
            quoted(m.route),
            if m.latency_ms.is_finite() {
                m.latency_ms
            } else {
                0.0
            },
            u8::from(m.status >= 500),
            u8::from(m.unavailable),
            u8::from(m.cold_start),
            m.status,
            quoted(m.request_id),
        );
        if let Some(outcome) = m.outcome {
            let _ = write!(line, r#","Outcome":{},"Outcomes":1"#, quoted(outcome));
        }
        if let Some(trace) = m.trace_id {
            let _ = write!(line, r#","traceId":{}"#, quoted(trace));
        }
        line.push('}');
        line
    }
}

/// A JSON string literal of `s` (escaped as JSON requires).
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The line with the default namespace and service.
pub fn emf(m: &RequestMetrics, timestamp_ms: i64) -> String {
    Emf::default().line(m, timestamp_ms)
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
        let line = emf(&m, 1_795_356_000_000);
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
        let doc = check_emf(&other).unwrap();
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
    fn two_stacks_keep_their_metrics_apart() {
        let m = RequestMetrics {
            function: "validate",
            route: "POST /validate",
            outcome: Some("ACTIVE"),
            ..Default::default()
        };
        let a = check_emf(&Emf::new("Acme/Tokens", "tollgate-prod").line(&m, 1)).unwrap();
        assert_eq!(a["Service"], "tollgate-prod");
        for d in a["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
            assert_eq!(d["Namespace"], "Acme/Tokens");
            for set in d["Dimensions"].as_array().unwrap() {
                assert_eq!(set[0], "Service", "{set}");
            }
        }
        let b = check_emf(&Emf::new("Acme/Tokens", "tollgate-staging").line(&m, 1)).unwrap();
        assert_eq!(b["Service"], "tollgate-staging");
    }

    #[test]
    fn strings_are_escaped() {
        let m = RequestMetrics {
            function: "validate",
            route: "POST /validate",
            request_id: "a\"b\\c\nd",
            latency_ms: f64::NAN,
            ..Default::default()
        };
        let doc = check_emf(&emf(&m, 1)).unwrap();
        assert_eq!(doc["requestId"], "a\"b\\c\nd");
        assert_eq!(doc["Latency"], 0.0);
    }

    #[test]
    fn a_broken_document_is_refused() {
        assert!(check_emf("{}").is_err());
        assert!(check_emf(r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"T","Dimensions":[["F"]],"Metrics":[{"Name":"L"}]}]},"L":1}"#).is_err());
        assert!(check_emf(r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"T","Dimensions":[["F"]],"Metrics":[{"Name":"L"}]}]},"F":"x","L":"1"}"#).is_err());
        assert!(check_emf(r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"T","Dimensions":[["F"]],"Metrics":[{"Name":"L"}]}]},"F":"x","L":1}"#).is_ok());
    }
}
