//! The AWS Lambda adapter: API Gateway HTTP API (payload 2.0) events in,
//! responses out, one JSON log line per request. Each function's `main`
//! is one call to [`run`] (the authorize function's, to [`authorizer::run`];
//! the events function's, to [`events::run`]; the console's, to
//! [`console::run`]).

pub mod authorizer;
pub mod console;
pub mod events;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use lambda_http::request::RequestContext;
pub use lambda_http::Error;
use lambda_http::{service_fn, Body, Request, RequestExt, Response};

use crate::config::{Config, ConfigError, KeySource, KeyringSource};
use crate::http::{ApiRequest, ApiResponse, Identity};
use crate::keysource::SecretsManagerKeyring;
use crate::metrics::RequestMetrics;
use crate::store::dynamo::{sdk_config, DynamoStore};
use crate::{App, Function};

/// JSON logs in the shape CloudWatch Logs Insights and Lambda's JSON log
/// format expect, on stdout (see [`log_subscriber`]), at the level of
/// [`log_directives`]. Each line inside a request carries that request's
/// span (`requestId`, `traceId`).
pub fn init_logging() {
    let _ =
        tracing::subscriber::set_global_default(log_subscriber(&log_directives(), std::io::stdout));
}

/// The log filter: `TOLLGATE_LOG`, else `RUST_LOG` (`tracing`'s directive
/// syntax), else the level Lambda's `ApplicationLogLevel` sets
/// (`AWS_LAMBDA_LOG_LEVEL`) with SDK and runtime noise only from `warn` up.
pub fn log_directives() -> String {
    let set = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    set("TOLLGATE_LOG").or_else(|| set("RUST_LOG")).unwrap_or_else(|| {
        let level = lambda_log_level(std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref());
        format!("{level},aws_config=warn,aws_smithy_runtime=warn,aws_sdk_dynamodb=warn,hyper=warn,lambda_runtime=warn,lambda_http=warn")
    })
}

/// The JSON log subscriber writing to `writer`, filtered by `directives`
/// and, whatever they say, never below `info` for the SDK, HTTP, TLS and
/// Lambda runtime crates: at `debug` and `trace` those print signed
/// requests and request and response bodies (secret hashes, tokens in
/// events).
pub fn log_subscriber<W>(directives: &str, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer;
    let filter = tracing_subscriber::EnvFilter::try_new(directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let capped = tracing_subscriber::filter::filter_fn(|meta| {
        *meta.level() <= tracing::Level::INFO || !is_dependency_noise(meta.target())
    });
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_writer(writer)
        .with_filter(capped)
        .with_filter(filter);
    tracing_subscriber::registry().with(layer)
}

/// The crates whose `debug` and `trace` lines may carry what must never
/// be logged.
fn is_dependency_noise(target: &str) -> bool {
    const NOISY: &[&str] = &[
        "aws_",
        "hyper",
        "h2",
        "rustls",
        "tower",
        "reqwest",
        "lambda_runtime",
        "lambda_http",
    ];
    NOISY.iter().any(|p| target.starts_with(p))
}

/// The `tracing` level for Lambda's log level names (`FATAL` has no
/// equal: `error`); `INFO` when unset or unknown.
pub fn lambda_log_level(level: Option<&str>) -> &'static str {
    match level.map(str::to_ascii_uppercase).as_deref() {
        Some("TRACE") => "trace",
        Some("DEBUG") => "debug",
        Some("WARN") => "warn",
        Some("ERROR") | Some("FATAL") => "error",
        _ => "info",
    }
}

static COLD: AtomicBool = AtomicBool::new(true);

/// True for the first request this function instance serves.
pub fn cold_start() -> bool {
    COLD.swap(false, Ordering::Relaxed)
}

/// Writes one request's metrics as an EMF line beside its log line, in
/// this deployment's namespace and service.
pub fn emit_metrics(app: &App, m: &RequestMetrics) {
    let now = crate::dates::millis(crate::dates::now());
    println!("{}", app.config.metrics.line(m, now));
}

/// Whether `function` opens its DynamoDB connection with a `GetItem` during
/// init: list (Query only) and delete (DeleteItem only) may not read items.
pub fn warms_up(function: Function) -> bool {
    !matches!(function, Function::List | Function::Delete)
}

/// Builds the app once per cold start: configuration, SDK client, the
/// keyring (read from Secrets Manager when configured so) and, when
/// `warm_up`, an open connection to DynamoDB: the secret read and the
/// warm-up run concurrently, so the read adds no round trip to init.
pub async fn app_from_env(warm_up: bool) -> Result<App, Error> {
    let config = Config::from_env()?;
    let sdk = sdk_config().await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        &config.table,
        config.retention_seconds,
    );
    // Open the DynamoDB connection now, so the first request does not pay
    // for it. Functions whose policy allows no GetItem skip it, and
    // TOLLGATE_WARM_UP=0 turns it off (the benchmark measures both).
    let warm_up = warm_up && std::env::var("TOLLGATE_WARM_UP").as_deref() != Ok("0");
    let opened = async {
        if warm_up {
            store.warm_up().await;
        }
    };
    let (keyring, source) = match &config.key_source {
        KeySource::Inline(ring) => {
            opened.await;
            (ring.clone(), None)
        }
        KeySource::Secret(id) => {
            let source = Arc::new(SecretsManagerKeyring::new(&sdk, id.clone()));
            let (loaded, ()) = tokio::join!(source.load(), opened);
            // Never serve without a key: init fails, with one clear line.
            let ring = loaded.map_err(|e| ConfigError(format!("keyring: {e}")))?;
            (ring, Some(source as Arc<dyn KeyringSource>))
        }
    };
    let app = App::new(config, keyring, Arc::new(store));
    Ok(match source {
        Some(source) => app.refreshing_from(source),
        None => app,
    })
}

pub async fn run(function: Function) -> Result<(), Error> {
    let app = start(function).await?;
    lambda_http::run(service_fn(move |event: Request| {
        let app = app.clone();
        async move {
            Ok::<_, Error>(
                contained(async move { handle_event(&app, function, event).await }).await,
            )
        }
    }))
    .await
}

/// Logging, the panic hook and the app: what every function does once per
/// cold start.
pub async fn start(function: Function) -> Result<Arc<App>, Error> {
    init_logging();
    log_panics_without_detail();
    let app = app_from_env(warms_up(function)).await.and_then(|app| {
        // The validate function takes GitHub's secret-scanning reports.
        if function != Function::Validate {
            return Ok(app);
        }
        let url = &app.config.github_keys_url;
        let source = crate::leaks::https::HttpsKeySource::new(url)
            .map_err(|e| ConfigError(format!("TOLLGATE_GITHUB_KEYS_URL: {e}")))?;
        Ok(app.taking_leak_reports(Arc::new(source)))
    });
    match app {
        Ok(app) => Ok(Arc::new(app)),
        Err(e) => {
            // The one line that says why this function cannot serve.
            tracing::error!(error = %e, "init failed");
            Err(e)
        }
    }
}

/// The last line of defence: a panic in the handler (always a bug) becomes
/// a bare 500 problem document, and the process lives on to serve the next
/// request. The panic hook has already written the one `ERROR` line.
pub async fn contained<F>(handler: F) -> Response<Body>
where
    F: std::future::Future<Output = Response<Body>> + Send + 'static,
{
    match tokio::spawn(handler).await {
        Ok(resp) => resp,
        Err(_) => to_lambda_response(crate::http::ApiError::Internal.into_response()),
    }
}

/// Replaces the default panic message (which quotes the input a slice
/// failed on, possibly a token) with one `ERROR` log line naming only
/// where the panic happened.
pub fn log_panics_without_detail() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(location = %location, "handler panicked; answered 500");
    }));
}

/// One request: adapt, serve, log and count, adapt back.
pub async fn handle_event(app: &App, function: Function, event: Request) -> Response<Body> {
    let started = Instant::now();
    let cold = cold_start();
    let trace_id = trace_id(&event);
    let req = to_api_request(event);
    let span =
        tracing::info_span!("request", requestId = %req.request_id, traceId = trace_id.as_deref());
    let (route, resp) = app.handle(function, &req).instrument(span.clone()).await;
    let _in_request = span.enter();
    let owner = crate::service::owner::owner(&app.config, &req).ok();
    let route = route.as_ref().map_or("unmatched", |r| r.template());
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        function = function.name(),
        route,
        status = resp.status,
        latencyMs = latency_ms,
        reason = resp.reason,
        owner = owner.as_ref().map(|o| o.as_str()),
        coldStart = cold,
        "request"
    );
    // A validate's outcome: the refusal's reason, or ACTIVE.
    let outcome =
        (route == "POST /validate" && resp.status == 200).then(|| resp.reason.unwrap_or("ACTIVE"));
    emit_metrics(
        app,
        &RequestMetrics {
            function: function.name(),
            route,
            status: resp.status,
            latency_ms,
            outcome,
            cold_start: cold,
            unavailable: resp.status == 503,
            request_id: &req.request_id,
            trace_id: trace_id.as_deref(),
        },
    );
    to_lambda_response(resp)
}

/// The X-Ray trace id of this invocation (`Tracing: Active`).
fn trace_id(event: &Request) -> Option<String> {
    event
        .lambda_context_ref()
        .and_then(|c| c.xray_trace_id.clone())
}

pub fn to_api_request(event: Request) -> ApiRequest {
    let mut identity = Identity::default();
    let mut source_ip = None;
    let mut request_id = event
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_default();
    #[allow(irrefutable_let_patterns)]
    if let Some(RequestContext::ApiGatewayV2(ctx)) = event.request_context_ref() {
        source_ip = ctx
            .http
            .source_ip
            .as_deref()
            .and_then(crate::token::address::parse_ip);
        if request_id.is_empty() {
            request_id = ctx.request_id.clone().unwrap_or_default();
        }
        if let Some(auth) = &ctx.authorizer {
            identity.jwt_sub = auth.jwt.as_ref().and_then(|j| j.claims.get("sub").cloned());
            let lambda_field = |name: &str| {
                auth.fields
                    .get(name)
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            };
            identity.authorizer_owner = lambda_field("owner");
            identity.authorizer_token_id = lambda_field("tokenId");
            identity.iam_caller = auth
                .iam
                .as_ref()
                .and_then(|i| i.user_arn.clone().or_else(|| i.caller_id.clone()));
        }
    }
    let path_id = event
        .path_parameters_ref()
        .and_then(|p| p.first("id").or_else(|| p.first("leaseId")))
        .map(str::to_owned);
    let query = event
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let (parts, body) = event.into_parts();
    ApiRequest {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        path_id,
        query,
        headers: parts.headers,
        body: body.to_vec(),
        source_ip,
        identity,
        request_id,
    }
}

pub fn to_lambda_response(resp: ApiResponse) -> Response<Body> {
    let mut builder = Response::builder().status(resp.status);
    for (k, v) in &resp.headers {
        builder = builder.header(*k, v.as_str());
    }
    let body = if resp.body.is_empty() {
        Body::Empty
    } else {
        Body::Text(String::from_utf8_lossy(&resp.body).into_owned())
    };
    builder.body(body).unwrap_or_else(|_| {
        let mut r = Response::new(Body::Empty);
        *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependency_crates_are_capped_and_ours_are_not() {
        for noisy in [
            "aws_sigv4::sign",
            "aws_smithy_runtime",
            "hyper_util::client",
            "lambda_runtime",
        ] {
            assert!(is_dependency_noise(noisy), "{noisy}");
        }
        for ours in ["tollgate", "tollgate::validate", "authorize"] {
            assert!(!is_dependency_noise(ours), "{ours}");
        }
    }

    #[test]
    fn lambda_log_levels_map_to_tracing_levels() {
        for (lambda, ours) in [
            (Some("TRACE"), "trace"),
            (Some("debug"), "debug"),
            (Some("INFO"), "info"),
            (Some("WARN"), "warn"),
            (Some("ERROR"), "error"),
            (Some("FATAL"), "error"),
            (Some("loud"), "info"),
            (None, "info"),
        ] {
            assert_eq!(lambda_log_level(lambda), ours, "{lambda:?}");
        }
    }

    #[tokio::test]
    async fn a_panic_becomes_a_bare_500_and_the_runtime_lives_on() {
        let secret = "tgl_aaaaaaaaaaaaaaaaaaaa";
        let resp = contained(async move {
            let text = format!("{secret}é");
            // The kind of bug the security review found: slicing input.
            let cut = text.len() - 1;
            #[allow(clippy::string_slice)]
            let _ = &text[..cut];
            Response::new(Body::Empty)
        })
        .await;
        assert_eq!(resp.status(), 500);
        let body = match resp.body() {
            Body::Text(t) => t.clone(),
            other => panic!("expected a problem document, got {other:?}"),
        };
        assert!(body.contains("\"status\":500"), "{body}");
        for leak in ["panicked", "char boundary", secret, "src/"] {
            assert!(!body.contains(leak), "{leak} in {body}");
        }
        // The next request on the same runtime is served normally.
        let next = contained(async { Response::new(Body::Empty) }).await;
        assert_eq!(next.status(), 200);
    }
}
