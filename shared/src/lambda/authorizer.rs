//! The authorize function's Lambda adapter: API Gateway authorizer events
//! in (HTTP API REQUEST payload 2.0; REST API TOKEN and REQUEST payload
//! 1.0), the [`Question`] asked of `App::authorize`, and the answer in the
//! shape that API asked for: a simple response for HTTP APIs, an IAM policy
//! on the method ARN for REST APIs. An event of no known shape, or a panic,
//! denies: the authorizer fails closed.

use std::sync::Arc;
use std::time::Instant;

use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerRequest,
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayCustomAuthorizerResponse,
    ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request,
};
use lambda_http::aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use lambda_http::lambda_runtime::{self, service_fn, LambdaEvent};
use serde_json::{json, Value};
use tracing::Instrument;

use super::{start, Error};
use crate::metrics::RequestMetrics;
use crate::service::authorize::{Question, Verdict, UNAVAILABLE};
use crate::token::address::parse_ip;
use crate::validate::binding::Binding;
use crate::{App, Function};

pub async fn run() -> Result<(), Error> {
    let app = start(Function::Authorize).await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let app = app.clone();
        let trace_id = event.context.xray_trace_id.clone();
        let request_id = event.context.request_id.clone();
        let span =
            tracing::info_span!("request", requestId = %request_id, traceId = trace_id.as_deref());
        async move {
            let started = Instant::now();
            let cold = super::cold_start();
            let (kind, verdict, doc) = answer(app.clone(), event.payload).await;
            let (allowed, reason) = match &verdict {
                Verdict::Allow { .. } => (true, None),
                Verdict::Deny { reason } => (false, Some(*reason)),
            };
            let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            tracing::info!(
                function = "authorize",
                event = kind,
                allowed,
                reason,
                latencyMs = latency_ms,
                coldStart = cold,
                "authorize"
            );
            super::emit_metrics(
                &app,
                &RequestMetrics {
                    function: "authorize",
                    route: kind,
                    status: 200,
                    latency_ms,
                    outcome: Some(reason.unwrap_or("ACTIVE")),
                    cold_start: cold,
                    unavailable: reason == Some(UNAVAILABLE),
                    request_id: &request_id,
                    trace_id: trace_id.as_deref(),
                },
            );
            Ok::<Value, Error>(doc)
        }
        .instrument(span)
    }))
    .await
}

/// One authorizer event: its kind, the verdict and the answer document; a
/// panic (a bug) denies everything.
pub async fn answer(app: Arc<App>, payload: Value) -> (&'static str, Verdict, Value) {
    let Some(event) = Event::parse(payload) else {
        tracing::warn!("authorize: not an authorizer event; denied");
        return (
            "unknown",
            Verdict::deny("MALFORMED"),
            deny_everything("MALFORMED"),
        );
    };
    let kind = event.kind();
    let answered = tokio::spawn(async move {
        let verdict = match event.question() {
            Some(q) => app.authorize(&q).await,
            None => Verdict::deny("MALFORMED"),
        };
        let doc = event.response(&verdict);
        (verdict, doc)
    });
    match answered.await {
        Ok((verdict, doc)) => (kind, verdict, doc),
        Err(_) => (kind, Verdict::deny("ERROR"), deny_everything("ERROR")),
    }
}

/// The authorizer events API Gateway sends.
#[derive(Debug)]
pub enum Event {
    /// HTTP API, REQUEST, payload format 2.0: answered with a simple response.
    Http(Box<ApiGatewayV2CustomAuthorizerV2Request>),
    /// REST API, TOKEN: only the identity source's value and the method ARN.
    RestToken(ApiGatewayCustomAuthorizerRequest),
    /// REST API, REQUEST (payload 1.0).
    RestRequest(Box<ApiGatewayCustomAuthorizerRequestTypeRequest>),
}

impl Event {
    /// Tells the shape by `version` and `type`; `None` for anything else.
    pub fn parse(payload: Value) -> Option<Event> {
        let field = |k: &str| payload.get(k).and_then(Value::as_str).map(str::to_owned);
        match (field("version").as_deref(), field("type").as_deref()) {
            (Some("2.0"), Some("REQUEST")) => serde_json::from_value(payload)
                .ok()
                .map(|e| Event::Http(Box::new(e))),
            (_, Some("TOKEN")) => serde_json::from_value(payload).ok().map(Event::RestToken),
            (None | Some("1.0"), Some("REQUEST")) => serde_json::from_value(payload)
                .ok()
                .map(|e| Event::RestRequest(Box::new(e))),
            _ => None,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Event::Http(_) => "http-request-2.0",
            Event::RestToken(_) => "rest-token",
            Event::RestRequest(_) => "rest-request",
        }
    }

    /// What is asked: the credential, the method and path (stage removed),
    /// the caller's address (a TOKEN event carries none). `None` when the
    /// event does not say which request it is about.
    pub fn question(&self) -> Option<Question> {
        match self {
            Event::Http(e) => {
                let ctx = &e.request_context;
                let credential = match e.identity_source.as_deref() {
                    Some([first, ..]) => Some(first.clone()),
                    _ => header(&e.headers, "authorization"),
                };
                let path = e.raw_path.as_deref()?;
                Some(Question {
                    credential,
                    method: ctx.http.method.as_str().to_owned(),
                    path: without_stage(path, ctx.stage.as_deref(), ctx.domain_name.as_deref()),
                    source_ip: ctx.http.source_ip.as_deref().and_then(parse_ip),
                    binding: Binding::from_stage_variables(&e.stage_variables),
                })
            }
            Event::RestToken(e) => {
                let (method, path) = method_and_path(e.method_arn.as_deref()?)?;
                // A TOKEN event carries no stage variables: such an API
                // cannot say whose tokens it accepts, so it is not bound.
                Some(Question {
                    credential: e.authorization_token.clone(),
                    method,
                    path,
                    source_ip: None,
                    binding: None,
                })
            }
            Event::RestRequest(e) => {
                let (method, path) = method_and_path(e.method_arn.as_deref()?)?;
                let source_ip = e.request_context.identity.as_ref();
                Some(Question {
                    credential: header(&e.headers, "authorization"),
                    method,
                    path,
                    source_ip: source_ip
                        .and_then(|i| i.source_ip.as_deref())
                        .and_then(parse_ip),
                    binding: Binding::from_stage_variables(&e.stage_variables),
                })
            }
        }
    }

    /// The answer in this event's shape.
    pub fn response(&self, verdict: &Verdict) -> Value {
        let context = Value::Object(verdict.context());
        match self {
            Event::Http(_) => {
                let mut r = ApiGatewayV2CustomAuthorizerSimpleResponse::<Value>::default();
                r.is_authorized = matches!(verdict, Verdict::Allow { .. });
                r.context = context;
                json!(r)
            }
            Event::RestToken(e) => policy_response(verdict, e.method_arn.as_deref(), context),
            Event::RestRequest(e) => policy_response(verdict, e.method_arn.as_deref(), context),
        }
    }
}

/// A REST API answer: allow or deny this method ARN.
fn policy_response(verdict: &Verdict, method_arn: Option<&str>, context: Value) -> Value {
    let (effect, principal) = match verdict {
        Verdict::Allow { principal, .. } => (IamPolicyEffect::Allow, principal.as_str()),
        Verdict::Deny { .. } => (IamPolicyEffect::Deny, "anonymous"),
    };
    iam_response(
        principal,
        effect,
        method_arn.unwrap_or("*").to_owned(),
        context,
    )
}

/// For REST API answers: `principalId`, a one-statement policy on the
/// method ARN, and the context.
fn iam_response(
    principal: &str,
    effect: IamPolicyEffect,
    resource: String,
    context: Value,
) -> Value {
    let mut statement = IamPolicyStatement::default();
    statement.action = vec!["execute-api:Invoke".into()];
    statement.effect = effect;
    statement.resource = vec![resource];
    let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
    policy.version = Some("2012-10-17".into());
    policy.statement = vec![statement];
    let mut r = ApiGatewayCustomAuthorizerResponse::<Value>::default();
    r.principal_id = Some(principal.to_owned());
    r.policy_document = policy;
    r.context = context;
    json!(r)
}

/// For an event of no known shape: denied whichever API asked (a simple
/// response and a policy denying everything, in one document).
fn deny_everything(reason: &'static str) -> Value {
    let mut doc = iam_response(
        "anonymous",
        IamPolicyEffect::Deny,
        "*".into(),
        json!({ "reason": reason }),
    );
    doc["isAuthorized"] = json!(false);
    doc
}

fn header(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// An HTTP API's `rawPath` carries a named stage when the API is called
/// at its own endpoint (`{api}.execute-api.{region}.amazonaws.com`), never
/// behind a custom domain, whose API mapping chooses the stage: there the
/// first segment is the client's own, even when it spells the stage.
fn without_stage(raw_path: &str, stage: Option<&str>, domain: Option<&str>) -> String {
    let default_endpoint = domain.is_some_and(|d| d.contains(".execute-api."));
    let path = match stage {
        Some(stage) if stage != "$default" && default_endpoint => {
            let prefix = format!("/{stage}");
            match raw_path.strip_prefix(&prefix) {
                Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
                _ => raw_path,
            }
        }
        _ => raw_path,
    };
    if path.is_empty() {
        "/".into()
    } else {
        path.into()
    }
}

/// The method and the path (stage removed) of a REST method ARN:
/// `arn:aws:execute-api:REGION:ACCOUNT:API/STAGE/METHOD/PATH...`.
fn method_and_path(method_arn: &str) -> Option<(String, String)> {
    let resource = method_arn.splitn(6, ':').nth(5)?;
    let mut parts = resource.splitn(4, '/');
    let (_api, _stage, method) = (parts.next()?, parts.next()?, parts.next()?);
    if method.is_empty() {
        return None;
    }
    Some((
        method.to_owned(),
        format!("/{}", parts.next().unwrap_or("")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_arn_gives_the_method_and_the_path_without_the_stage() {
        let arn = "arn:aws:execute-api:us-east-1:123456789012:abc/prod/POST/teams/1/members";
        assert_eq!(
            method_and_path(arn),
            Some(("POST".into(), "/teams/1/members".into()))
        );
        let root = "arn:aws:execute-api:us-east-1:123456789012:abc/prod/GET/";
        assert_eq!(method_and_path(root), Some(("GET".into(), "/".into())));
        for bad in [
            "",
            "arn:aws:execute-api",
            "arn:aws:execute-api:r:a:abc/prod",
        ] {
            assert_eq!(method_and_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_http_api_path_loses_a_named_stage_only() {
        let own = Some("abc123.execute-api.us-east-1.amazonaws.com");
        assert_eq!(without_stage("/prod/teams", Some("prod"), own), "/teams");
        assert_eq!(without_stage("/prod", Some("prod"), own), "/");
        assert_eq!(
            without_stage("/production/x", Some("prod"), own),
            "/production/x"
        );
        assert_eq!(without_stage("/teams", Some("$default"), own), "/teams");
    }

    #[test]
    fn behind_a_custom_domain_the_first_segment_is_the_clients() {
        // api.example.com mapped to the `admin` stage: `/admin/users` is
        // the client's path, not the stage and `/users`.
        let custom = Some("api.example.com");
        assert_eq!(
            without_stage("/admin/users", Some("admin"), custom),
            "/admin/users"
        );
        assert_eq!(
            without_stage("/admin/users", Some("admin"), None),
            "/admin/users"
        );
    }

    fn app() -> Arc<App> {
        Arc::new(crate::service::memory_app())
    }

    #[tokio::test]
    async fn malformed_events_fail_closed_in_every_shape() {
        let app = app();
        for event in [
            json!({}),
            json!({"version": "2.0", "type": "REQUEST"}),
            json!({"type": "TOKEN", "authorizationToken": "Bearer x", "methodArn": "nope"}),
            json!({"type": "REQUEST", "methodArn": 5}),
            json!({"version": "3.0", "type": "REQUEST"}),
        ] {
            let (_, _, answer) = answer(app.clone(), event.clone()).await;
            assert_ne!(answer["isAuthorized"], true, "{event}");
            let effect = &answer["policyDocument"]["Statement"][0]["Effect"];
            assert!(effect.is_null() || effect == "Deny", "{event}: {answer}");
            assert!(answer.get("principalId").is_none() || answer["principalId"] == "anonymous");
        }
    }

    #[tokio::test]
    async fn a_rest_token_authorizer_is_never_bound() {
        let token = json!({
            "type": "TOKEN",
            "authorizationToken": "Bearer tgl_forged",
            "methodArn": "arn:aws:execute-api:us-east-1:1:abc/prod/GET/x"
        });
        let (_, _, answer) = answer(app(), token).await;
        assert_eq!(answer["principalId"], "anonymous");
        assert_eq!(answer["policyDocument"]["Statement"][0]["Effect"], "Deny");
        assert_eq!(
            answer["policyDocument"]["Statement"][0]["Resource"],
            json!(["arn:aws:execute-api:us-east-1:1:abc/prod/GET/x"])
        );
        assert_eq!(answer["context"], json!({"reason": "API_NOT_BOUND"}));
    }

    fn http_event(path: &str, domain: &str, stage: &str, vars: Value) -> Value {
        json!({
            "version": "2.0", "type": "REQUEST",
            "routeArn": "arn:aws:execute-api:us-east-1:1:abc/prod/GET/x",
            "identitySource": ["Bearer tgl_forged"],
            "routeKey": "ANY /{proxy+}", "rawPath": path, "rawQueryString": "",
            "headers": {"authorization": "Bearer tgl_forged"},
            "stageVariables": vars,
            "requestContext": {
                "accountId": "1", "apiId": "abc", "domainName": domain,
                "domainPrefix": "abc", "requestId": "r", "routeKey": "ANY /{proxy+}",
                "stage": stage, "time": "03/Dec/2026:14:00:00 +0000", "timeEpoch": 0,
                "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1",
                         "sourceIp": "203.0.113.9", "userAgent": "t"}
            }
        })
    }

    #[tokio::test]
    async fn an_http_api_is_bound_by_its_stage_variables() {
        let own = "abc.execute-api.us-east-1.amazonaws.com";
        let unbound = http_event("/prod/x", own, "prod", json!({}));
        let (_, verdict, doc) = answer(app(), unbound).await;
        assert_eq!(verdict, Verdict::deny("API_NOT_BOUND"));
        assert_eq!(doc["isAuthorized"], false);
        let bound = http_event("/prod/x", own, "prod", json!({"tollgateOwners": "alice"}));
        let (_, verdict, _) = answer(app(), bound).await;
        assert_eq!(
            verdict,
            Verdict::deny("MALFORMED"),
            "bound: the token decides"
        );
    }

    #[test]
    fn a_custom_domain_event_keeps_its_first_segment() {
        let e = Event::parse(http_event(
            "/prod/admin",
            "api.example.com",
            "prod",
            json!({"tollgateOwners": "alice", "tollgateAudience": "billing"}),
        ))
        .unwrap();
        let q = e.question().unwrap();
        assert_eq!(q.path, "/prod/admin");
        let b = q.binding.unwrap();
        assert!(b.accepts_owner("alice"));
        assert_eq!(b.audience.as_deref(), Some("billing"));
        let own = Event::parse(http_event(
            "/prod/admin",
            "abc.execute-api.us-east-1.amazonaws.com",
            "prod",
            json!({}),
        ))
        .unwrap();
        assert_eq!(own.question().unwrap().path, "/admin");
    }
}
