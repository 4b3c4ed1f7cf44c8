//! The protected example API's one function. It does no checking of its
//! own: API Gateway ran Tollgate's `authorize` before invoking it, and the
//! authorizer's context (`owner`, `tokenId`, `type`, `tags`) arrives in
//! `requestContext.authorizer.lambda`. It echoes the request and that
//! context, so a caller sees who Tollgate said is calling.

use lambda_http::request::RequestContext;
use lambda_http::{service_fn, Body, Error, Request, RequestExt, Response};
use serde_json::{json, Value};

async fn echo(event: Request) -> Result<Response<Body>, Error> {
    let authorizer = match event.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .map(|a| json!(a.fields))
            .unwrap_or(Value::Null),
        _ => Value::Null,
    };
    let doc = json!({
        "method": event.method().as_str(),
        "path": event.uri().path(),
        "authorizer": authorizer,
    });
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::Text(doc.to_string()))?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(echo)).await
}
