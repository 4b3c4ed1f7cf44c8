//! The console function's adapter: a request for one of the console's
//! files in, the file (or 304, 404, 405) out, one log line. It holds no
//! app: no table, no keyring, no SDK client.

use std::sync::Arc;

use lambda_http::{service_fn, Body, Request, Response};

use super::{contained, init_logging, log_panics_without_detail, to_api_request};
use super::{to_lambda_response, Error};
use crate::console::{Asset, Console, ConsoleConfig};

/// The `console` function's whole life: its files, embedded by the
/// function's `main`, served until the runtime stops it.
pub async fn run(assets: &'static [Asset]) -> Result<(), Error> {
    init_logging();
    log_panics_without_detail();
    let config = ConsoleConfig::from_env().inspect_err(|e| {
        tracing::error!(error = %e, "init failed");
    })?;
    let console = Arc::new(Console::new(assets, &config));
    lambda_http::run(service_fn(move |event: Request| {
        let console = console.clone();
        async move { Ok::<_, Error>(contained(async move { handle(&console, event) }).await) }
    }))
    .await
}

fn handle(console: &Console, event: Request) -> Response<Body> {
    let req = to_api_request(event);
    let resp = console.serve(&req.method, &req.path, req.header("if-none-match"));
    tracing::info!(
        requestId = %req.request_id,
        method = %req.method,
        path = %req.path,
        status = resp.status,
        "console"
    );
    to_lambda_response(resp)
}
