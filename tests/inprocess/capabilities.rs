//! A capability's signature, format and window are decided with zero
//! database reads (counted by the SDK interceptor of `lease_cost`): every
//! forgery (EdDSA and ES256) and every capability outside its window is
//! refused unread.

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
    let cases: Vec<(String, &str)> = cases
        .into_iter()
        .chain(es256_forgeries(&app).await)
        .collect();
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

/// ES256 forgeries of a real ES256 capability: the same signature made
/// high-S, a zero signature, HS256 keyed with the EC public key, another
/// P-256 key's signature under Tollgate's key id, an ES256 signature under
/// the Ed25519 key's id, and an embedded key with an off-curve point.
async fn es256_forgeries(app: &tollgate::App) -> Vec<(String, &'static str)> {
    use p256::ecdsa::signature::Signer;
    let (_, token) = mint(app, &owner("capreads-es"), json!({"resource": "/teams"})).await;
    let minted = call(
        app,
        Function::Validate,
        &api_request(
            "POST",
            "/validate/capabilities",
            None,
            json!({"token": token, "alg": "ES256"}),
        ),
    )
    .await;
    assert_eq!(minted.0, 201, "{}", minted.1);
    let real = minted.1["capability"].as_str().unwrap().to_owned();
    let (input, signature) = real.rsplit_once('.').unwrap();
    let (head, payload) = input.split_once('.').unwrap();
    let kid = serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(head).unwrap()).unwrap()
        ["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let sig =
        p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).unwrap()).unwrap();
    let (r, s) = sig.split_scalars();
    let high_s = p256::ecdsa::Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
    let jwks = capability::jwks(&app.keyring());
    let ec = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap()
        .clone();
    let mut sec1 = vec![4u8];
    sec1.extend(URL_SAFE_NO_PAD.decode(ec["x"].as_str().unwrap()).unwrap());
    sec1.extend(URL_SAFE_NO_PAD.decode(ec["y"].as_str().unwrap()).unwrap());
    let header = |h: Value| b64(h.to_string().as_bytes());
    let signed_by = |key: &p256::ecdsa::SigningKey, h: Value| {
        let input = format!("{}.{payload}", header(h));
        let sig: p256::ecdsa::Signature = key.sign(input.as_bytes());
        format!("{input}.{}", b64(&sig.normalize_s().to_bytes()))
    };
    let other = p256::ecdsa::SigningKey::from_slice(&[5u8; 32]).unwrap();
    let hs256 = {
        let input = format!(
            "{}.{payload}",
            header(json!({"alg": "HS256", "typ": "JWT", "kid": kid}))
        );
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&sec1).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", b64(&mac.finalize().into_bytes()))
    };
    let ring_kid = kid.trim_end_matches("-es256").to_owned();
    vec![
        (format!("{input}.{}", b64(&high_s.to_bytes())), "MALFORMED"),
        (format!("{input}.{}", b64(&[0u8; 64])), "MALFORMED"),
        (hs256, "MALFORMED"),
        (
            signed_by(&other, json!({"alg": "ES256", "typ": "JWT", "kid": kid})),
            "MALFORMED",
        ),
        (
            format!(
                "{}.{payload}.{signature}",
                header(json!({"alg": "ES256", "typ": "JWT", "kid": ring_kid}))
            ),
            "MALFORMED",
        ),
        (
            signed_by(
                &other,
                json!({"alg": "ES256", "typ": "JWT", "kid": kid,
                       "jwk": {"kty": "EC", "crv": "P-256", "x": b64(&[1u8; 32]), "y": b64(&[2u8; 32])}}),
            ),
            "MALFORMED",
        ),
    ]
}
