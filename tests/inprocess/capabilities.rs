//! A capability's signature, format and window are decided with zero
//! database reads (counted by the SDK interceptor of `lease_cost`): every
//! forgery and every capability outside its window is refused unread.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tollgate::credentials::capability::{self, Claims};
use tollgate::Function;
use tollgate_tests::{api_request, call, mint_in_process as mint, owner};

use crate::lease_cost::{metered_app, CapacityMeter};

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_out_of_window_capabilities_are_refused_with_no_read() {
    let meter = CapacityMeter::default();
    let app = metered_app(&meter).await;
    let (_, token) = mint(&app, &owner("capreads"), json!({"resource": "/teams"})).await;
    let minted = call(
        &app,
        Function::Validate,
        &api_request(
            "POST",
            "/validate/capabilities",
            None,
            json!({"token": token}),
        ),
    )
    .await;
    assert_eq!(minted.0, 201, "{}", minted.1);
    let real = minted.1["capability"].as_str().unwrap().to_owned();
    let keys = app.keyring();
    let issuer = app.config.issuer.clone();
    let claims: Claims = capability::verify(&keys, &issuer, &real, tollgate::dates::now()).unwrap();
    let now = tollgate::dates::now().unix_timestamp();
    let signed = |c: Claims| capability::sign(&keys, &issuer, &c);
    let (_, payload, signature) = {
        let p: Vec<&str> = real.split('.').collect();
        (p[0].to_owned(), p[1].to_owned(), p[2].to_owned())
    };
    let public = URL_SAFE_NO_PAD
        .decode(capability::jwks(&keys)["keys"][0]["x"].as_str().unwrap())
        .unwrap();
    let header = |h: Value| b64(h.to_string().as_bytes());
    let hs256 = {
        let input = format!(
            "{}.{payload}",
            header(json!({"alg": "HS256", "typ": "JWT", "kid": "v1"}))
        );
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&public).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", b64(&mac.finalize().into_bytes()))
    };
    let cases = [
        (
            format!(
                "{}.{payload}.",
                header(json!({"alg": "none", "typ": "JWT"}))
            ),
            "MALFORMED",
        ),
        (hs256, "MALFORMED"),
        (
            format!(
                "{}.{payload}.{signature}",
                header(json!({"alg": "EdDSA", "typ": "JWT", "kid": "nope"}))
            ),
            "MALFORMED",
        ),
        (format!("{}x", real), "MALFORMED"),
        (
            signed(Claims {
                not_before: now + 600,
                expires: now + 1200,
                ..claims.clone()
            }),
            "NOT_YET_VALID",
        ),
        (
            signed(Claims {
                not_before: now - 1200,
                expires: now - 600,
                ..claims.clone()
            }),
            "EXPIRED",
        ),
        (
            capability::sign(&keys, "someone-else", &claims),
            "MALFORMED",
        ),
    ];
    meter.requests();
    for (cap, reason) in cases {
        let (status, v) = call(
            &app,
            Function::Validate,
            &api_request("POST", "/validate", None, json!({"token": cap})),
        )
        .await;
        assert_eq!((status, v["reason"].as_str()), (200, Some(reason)), "{cap}");
        assert_eq!(
            meter.requests(),
            Vec::<&str>::new(),
            "no read for {reason}: {cap}"
        );
    }
    // The real one reads its parent: one GetItem.
    let (_, v) = call(
        &app,
        Function::Validate,
        &api_request("POST", "/validate", None, json!({"token": real})),
    )
    .await;
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(meter.requests().first(), Some(&"GetItem"));
}
