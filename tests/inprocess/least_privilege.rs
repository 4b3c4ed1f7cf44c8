//! Least privilege, proven: every function is driven through all of its
//! routes (happy and refusal paths) over a recording store; the DynamoDB
//! actions its code issued must be exactly the ones its policy in
//! `template.yaml` names, on the table (and index), and nothing broader.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use tollgate::validate::binding::{Binding, Owners};

use async_trait::async_trait;
use serde_json::{json, Value};
use time::OffsetDateTime;
use tollgate::audit::{AuditQuery, AuditRecord};
use tollgate::config::Config;
use tollgate::http::ApiRequest;
use tollgate::identity::IdentityRecord;
use tollgate::service::authorize::Question;
use tollgate::store::dynamo::iam::{iam_actions, QUERY_INDEX, QUERY_TARGET_INDEX};
use tollgate::store::memory::MemoryStore;
use tollgate::store::{
    Admission, AdmitOutcome, AuditPage, CreateOutcome, Deletion, IdempotencyRecord,
    IdentityDeletion, IdentityPage, JointOutcome, LeaseMove, MoveOutcome, Page, Replaced, Store,
    StoreError,
};
use tollgate::token::TokenRecord;
use tollgate::{App, Function};
use tollgate_tests::api_request;

/// Records which store methods were called, around the memory store.
struct Recording {
    inner: Arc<MemoryStore>,
    calls: Mutex<BTreeSet<&'static str>>,
}

impl Recording {
    fn note(&self, m: &'static str) {
        self.calls.lock().unwrap().insert(m);
    }
}

#[async_trait]
impl Store for Recording {
    async fn put_new(
        &self,
        rec: &TokenRecord,
        idem: Option<&IdempotencyRecord>,
        audit: &AuditRecord,
    ) -> Result<CreateOutcome, StoreError> {
        self.note("put_new");
        self.inner.put_new(rec, idem, audit).await
    }
    async fn idempotency(
        &self,
        key: &str,
        now: i64,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.note("idempotency");
        self.inner.idempotency(key, now).await
    }
    async fn get(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.note("get");
        self.inner.get(id).await
    }
    async fn get_many(&self, ids: &[&str]) -> Result<Vec<Option<TokenRecord>>, StoreError> {
        self.note("get_many");
        self.inner.get_many(ids).await
    }
    async fn list(
        &self,
        owner: &str,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page, StoreError> {
        self.note("list");
        self.inner.list(owner, limit, after).await
    }
    async fn replace(
        &self,
        seen: &TokenRecord,
        new: &TokenRecord,
        audit: &AuditRecord,
    ) -> Result<Replaced, StoreError> {
        self.note("replace");
        self.inner.replace(seen, new, audit).await
    }
    async fn roll(
        &self,
        seen: &TokenRecord,
        rolled: &TokenRecord,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        self.note("roll");
        self.inner.roll(seen, rolled, audit).await
    }
    async fn delete(&self, seen: &TokenRecord, audit: &AuditRecord) -> Result<bool, StoreError> {
        self.note("delete");
        self.inner.delete(seen, audit).await
    }
    async fn delete_by_secret(&self, id: &str, secret_hash: &str) -> Result<Deletion, StoreError> {
        self.note("delete_by_secret");
        self.inner.delete_by_secret(id, secret_hash).await
    }
    async fn end_grace(&self, seen: &TokenRecord, now: OffsetDateTime) -> Result<bool, StoreError> {
        self.note("end_grace");
        self.inner.end_grace(seen, now).await
    }
    async fn revoke_capabilities(
        &self,
        seen: &TokenRecord,
        revoked: &tollgate::credentials::RevokedCapabilities,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.note("revoke_capabilities");
        self.inner.revoke_capabilities(seen, revoked, now).await
    }
    async fn admit(&self, a: &Admission<'_>) -> Result<AdmitOutcome, StoreError> {
        self.note("admit");
        self.inner.admit(a).await
    }
    async fn admit_joint(
        &self,
        token: &Admission<'_>,
        identity: &Admission<'_>,
    ) -> Result<JointOutcome, StoreError> {
        self.note("admit_joint");
        self.inner.admit_joint(token, identity).await
    }
    async fn put_identity(
        &self,
        rec: &IdentityRecord,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        self.note("put_identity");
        self.inner.put_identity(rec, audit).await
    }
    async fn get_identity(&self, id: &str) -> Result<Option<IdentityRecord>, StoreError> {
        self.note("get_identity");
        self.inner.get_identity(id).await
    }
    async fn identity_by_external_id(
        &self,
        owner: &str,
        external_id: &str,
    ) -> Result<Option<IdentityRecord>, StoreError> {
        self.note("identity_by_external_id");
        self.inner.identity_by_external_id(owner, external_id).await
    }
    async fn list_identities(
        &self,
        owner: &str,
        limit: usize,
        after: Option<&str>,
    ) -> Result<IdentityPage, StoreError> {
        self.note("list_identities");
        self.inner.list_identities(owner, limit, after).await
    }
    async fn replace_identity(
        &self,
        seen: &IdentityRecord,
        new: &IdentityRecord,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        self.note("replace_identity");
        self.inner.replace_identity(seen, new, audit).await
    }
    async fn delete_identity(
        &self,
        id: &str,
        owner: &str,
        audit: &AuditRecord,
    ) -> Result<IdentityDeletion, StoreError> {
        self.note("delete_identity");
        self.inner.delete_identity(id, owner, audit).await
    }
    async fn record(&self, record: &AuditRecord) -> Result<(), StoreError> {
        self.note("record");
        self.inner.record(record).await
    }
    async fn audit(&self, owner: &str, q: &AuditQuery) -> Result<AuditPage, StoreError> {
        self.note("audit");
        self.inner.audit(owner, q).await
    }
    async fn move_lease(&self, m: &LeaseMove<'_>) -> Result<MoveOutcome, StoreError> {
        self.note("move_lease");
        self.inner.move_lease(m).await
    }
    async fn touch(
        &self,
        id: &str,
        now: OffsetDateTime,
        fresh_after: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.note("touch");
        self.inner.touch(id, now, fresh_after).await
    }
}

fn config() -> Config {
    Config::from_lookup(|k| match k {
        "TOLLGATE_TABLE" => Some("t".into()),
        "TOLLGATE_HASH_KEY" => Some("MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=".into()),
        "TOLLGATE_LEASE_SECONDS" => Some("1".into()),
        _ => None,
    })
    .unwrap()
}

fn ring() -> tollgate::credentials::Keyring {
    tollgate::credentials::Keyring::parse("MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=").unwrap()
}

fn req(method: &str, path: &str, body: Value, headers: &[(&'static str, &str)]) -> ApiRequest {
    let mut r = api_request(method, path, Some("owner-1"), body);
    for (k, v) in headers {
        r.headers.insert(*k, v.parse().unwrap());
    }
    r
}

/// Drives every function through its routes; returns the store methods each used.
async fn exercise() -> HashMap<Function, BTreeSet<&'static str>> {
    let shared = Arc::new(MemoryStore::new());
    let mut used = HashMap::new();
    let setup = App::new(config(), ring(), shared.clone());
    let (_, created) = setup
        .handle(
            Function::Create,
            &req(
                "POST",
                "/tokens",
                json!({"maxUses": 5, "maxConcurrent": 1}),
                &[],
            ),
        )
        .await;
    let v: Value = serde_json::from_slice(&created.body).unwrap();
    let (id, token) = (
        v["id"].as_str().unwrap().to_owned(),
        v["token"].as_str().unwrap().to_owned(),
    );
    let (_, plain) = setup
        .handle(Function::Create, &req("POST", "/tokens", json!({}), &[]))
        .await;
    let plain_token = serde_json::from_slice::<Value>(&plain.body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, relay) = setup
        .handle(
            Function::Create,
            &req(
                "POST",
                "/tokens",
                json!({"scopes": ["scope:tollgate:relay"]}),
                &[],
            ),
        )
        .await;
    let relay_token = serde_json::from_slice::<Value>(&relay.body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, leaked) = setup
        .handle(Function::Create, &req("POST", "/tokens", json!({}), &[]))
        .await;
    let leaked = serde_json::from_slice::<Value>(&leaked.body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, doomed) = setup
        .handle(Function::Create, &req("POST", "/tokens", json!({}), &[]))
        .await;
    let doomed = serde_json::from_slice::<Value>(&doomed.body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // An identity with limits, a token sharing them, and an identity
    // nothing points at (to delete).
    let setup = &setup;
    let identity_of = |body: Value| async move {
        let (_, r) = setup
            .handle(Function::Create, &req("POST", "/identities", body, &[]))
            .await;
        assert_eq!(r.status, 201);
        serde_json::from_slice::<Value>(&r.body).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let customer = identity_of(json!({"externalId": "c1", "maxUses": 50})).await;
    let spare = identity_of(json!({"externalId": "c0"})).await;
    let (_, shared_token) = setup
        .handle(
            Function::Create,
            &req("POST", "/tokens", json!({"identityId": customer}), &[]),
        )
        .await;
    let shared_token = serde_json::from_slice::<Value>(&shared_token.body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();

    for f in [
        Function::List,
        Function::Create,
        Function::Detail,
        Function::Patch,
        Function::Delete,
        Function::Validate,
        Function::Authorize,
    ] {
        let rec = Arc::new(Recording {
            inner: shared.clone(),
            calls: Mutex::new(BTreeSet::new()),
        });
        let app = App::new(config(), ring(), rec.clone());
        let requests: Vec<ApiRequest> = match f {
            Function::List => vec![
                req("GET", "/tokens", Value::Null, &[]),
                req("GET", "/identities", Value::Null, &[]),
                req("GET", "/identities?externalId=c1", Value::Null, &[]),
                req("GET", "/audit", Value::Null, &[]),
                req("GET", &format!("/audit?tokenId={id}"), Value::Null, &[]),
            ],
            Function::Create => vec![
                req(
                    "POST",
                    "/tokens",
                    json!({"description": "x", "maxConcurrent": 2}),
                    &[("idempotency-key", "k1")],
                ),
                req(
                    "POST",
                    "/tokens",
                    json!({"description": "x", "maxConcurrent": 2}),
                    &[("idempotency-key", "k1")],
                ),
                req("POST", "/tokens", json!({}), &[]),
                req("POST", "/identities", json!({"externalId": "c2"}), &[]),
                req("POST", "/identities", json!({"externalId": "c2"}), &[]),
                req("POST", "/tokens", json!({"identityId": customer}), &[]),
            ],
            Function::Detail => vec![
                req("GET", &format!("/tokens/{id}"), Value::Null, &[]),
                req("GET", &format!("/identities/{customer}"), Value::Null, &[]),
            ],
            Function::Patch => vec![
                req(
                    "PATCH",
                    &format!("/tokens/{id}"),
                    json!({"description": "y", "maxUses": 6}),
                    &[],
                ),
                req(
                    "PATCH",
                    &format!("/tokens/{id}"),
                    json!({"description": "z"}),
                    &[("if-match", "\"1\"")],
                ),
                req(
                    "POST",
                    &format!("/tokens/{id}/roll"),
                    json!({"graceSeconds": 60}),
                    &[],
                ),
                req(
                    "PATCH",
                    &format!("/identities/{customer}"),
                    json!({"maxUses": 60}),
                    &[],
                ),
            ],
            Function::Delete => vec![
                req("DELETE", &format!("/tokens/{doomed}"), Value::Null, &[]),
                req(
                    "DELETE",
                    &format!("/identities/{customer}"),
                    Value::Null,
                    &[],
                ),
                req("DELETE", &format!("/identities/{spare}"), Value::Null, &[]),
            ],
            Function::Validate => {
                let mut v = vec![
                    req("POST", "/validate", json!({"token": plain_token}), &[]),
                    req(
                        "POST",
                        "/validate",
                        json!({"token": token, "acquire": true}),
                        &[],
                    ),
                    req(
                        "POST",
                        "/validate",
                        json!({"token": token, "acquire": true}),
                        &[],
                    ),
                ];
                v.push(req("POST", "/validate", json!({"token": "tgl_bad"}), &[]));
                // A token and its identity, spent together.
                v.push(req(
                    "POST",
                    "/validate",
                    json!({"token": shared_token}),
                    &[],
                ));
                // Its holder revokes a token.
                v.push(req(
                    "POST",
                    "/validate/revoke",
                    json!({"token": leaked}),
                    &[],
                ));
                // Beside a relay credential, both are read in one batch.
                v.push(req(
                    "POST",
                    "/validate",
                    json!({"token": plain_token, "address": "203.0.113.9"}),
                    &[("tollgate-relay", relay_token.as_str())],
                ));
                v
            }
            Function::Authorize => {
                // No routes: authorizer questions, a token that spends a
                // use, one that spends nothing, and a forgery.
                for (credential, method) in [
                    (token.as_str(), "GET"),
                    (plain_token.as_str(), "POST"),
                    (shared_token.as_str(), "GET"),
                    ("tgl_bad", "GET"),
                ] {
                    let q = Question {
                        credential: Some(format!("Bearer {credential}")),
                        method: method.into(),
                        path: "/teams/1".into(),
                        source_ip: Some("203.0.113.9".parse().unwrap()),
                        binding: Some(Binding {
                            owners: Owners::Any,
                            audience: None,
                            costs: Vec::new(),
                        }),
                    };
                    let _ = app.authorize(&q).await;
                }
                vec![]
            }
        };
        let mut lease = None;
        for r in &requests {
            let (_, resp) = app.handle(f, r).await;
            assert!(resp.status < 500, "{f:?}: {}", resp.status);
            if let Ok(v) = serde_json::from_slice::<Value>(&resp.body) {
                if let Some(l) = v["lease"]["id"].as_str() {
                    lease = Some(l.to_owned());
                }
            }
        }
        if f == Function::Validate {
            // Let the lease lapse (a 1 s lease lasts under 2 s) so the next
            // acquire removes its bucket, then renew and release.
            tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
            let (_, r) = app
                .handle(
                    f,
                    &req(
                        "POST",
                        "/validate",
                        json!({"token": token, "acquire": true}),
                        &[],
                    ),
                )
                .await;
            let l = serde_json::from_slice::<Value>(&r.body).unwrap()["lease"]["id"]
                .as_str()
                .map(str::to_owned)
                .or(lease);
            let l = l.expect("a lease");
            let mut renew = req(
                "PUT",
                &format!("/validate/leases/{l}"),
                json!({"token": token}),
                &[],
            );
            renew.path_id = Some(l.clone());
            assert_eq!(app.handle(f, &renew).await.1.status, 200);
            let mut release = req(
                "DELETE",
                &format!("/validate/leases/{l}"),
                json!({"token": token}),
                &[],
            );
            release.path_id = Some(l);
            assert_eq!(app.handle(f, &release).await.1.status, 204);
        }
        let mut calls = rec.calls.lock().unwrap().clone();
        if tollgate::lambda::warms_up(f) {
            calls.insert("warm_up");
        }
        used.insert(f, calls);
    }
    used
}

fn template() -> serde_yaml::Value {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

/// A policy's resource as text: `!GetAtt TokensTable.Arn` or a `!Sub` string.
fn resource_text(v: &serde_yaml::Value) -> String {
    match v {
        serde_yaml::Value::Tagged(t) => format!("{} {}", t.tag, resource_text(&t.value)),
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Sequence(s) => s.iter().map(resource_text).collect::<Vec<_>>().join(","),
        other => format!("{other:?}"),
    }
}

#[tokio::test]
async fn each_policy_names_exactly_the_actions_its_code_calls() {
    let used = exercise().await;
    let tpl = template();
    for (f, calls) in used {
        let name = format!("{}Function", capitalise(f.name()));
        let statements = tpl["Resources"][name.as_str()]["Properties"]["Policies"][0]["Statement"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{name} has a policy statement list"));
        let mut granted = BTreeSet::new();
        let mut secret_reads = 0;
        for st in statements {
            assert_eq!(st["Effect"].as_str(), Some("Allow"));
            let resource = resource_text(&st["Resource"]);
            // The keyring: read at init, exactly one secret, nothing else.
            if resource.contains(":secretsmanager:") {
                let actions: Vec<&str> = st["Action"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .filter_map(|a| a.as_str())
                    .collect();
                assert_eq!(actions, ["secretsmanager:GetSecretValue"], "{name}");
                assert!(
                    resource.ends_with(":secret:${HashKeySecretName}-??????"),
                    "{name}: only the keyring secret: {resource}"
                );
                secret_reads += 1;
                continue;
            }
            assert!(
                !resource.contains('*'),
                "{name}: wildcard resource {resource}"
            );
            assert!(
                resource.contains("TokensTable"),
                "{name}: resource is the table: {resource}"
            );
            for a in st["Action"].as_sequence().unwrap() {
                let a = a.as_str().unwrap();
                assert!(
                    a.starts_with("dynamodb:") && !a.contains('*'),
                    "{name}: broad action {a}"
                );
                if resource.contains("/index/") {
                    let index = if resource.ends_with("/index/byOwner") {
                        QUERY_INDEX
                    } else {
                        assert!(resource.ends_with("/index/byTarget"), "{name}: {resource}");
                        QUERY_TARGET_INDEX
                    };
                    assert_eq!(a, "dynamodb:Query", "{name}: only Query on an index");
                    granted.insert(index.to_owned());
                } else {
                    granted.insert(a.to_owned());
                }
            }
        }
        assert_eq!(secret_reads, 1, "{name} reads the keyring secret");
        let needed: BTreeSet<String> = calls
            .iter()
            .flat_map(|m| iam_actions(m).iter().map(|a| a.to_string()))
            .collect();
        assert_eq!(
            granted, needed,
            "{name}: policy vs the actions its code calls ({calls:?})"
        );
    }
}

/// The events function: the stream it is mapped to, `token.expired`
/// records (audit items only, by their key), EventBridge's one bus, and
/// the dead-letter queue; no keyring, no other item of the table.
#[tokio::test]
async fn the_events_function_may_read_its_stream_and_put_records_and_events_only() {
    use tollgate::events::{deliver, Bus, Change, Fact, LifecycleEvent, TokenRef};
    struct NoBus;
    #[async_trait]
    impl Bus for NoBus {
        async fn put(&self, events: &[LifecycleEvent]) -> Result<Vec<bool>, String> {
            Ok(vec![true; events.len()])
        }
    }
    let rec = Recording {
        inner: Arc::new(MemoryStore::new()),
        calls: Mutex::new(BTreeSet::new()),
    };
    let token = TokenRef {
        id: "0123456789abcdefghjkmnpqrs".into(),
        owner: "owner-1".into(),
        identity_id: None,
    };
    let changes: Vec<Change> = [
        Fact::Expired(token.clone()),
        Fact::Exhausted(token),
        Fact::Nothing,
    ]
    .into_iter()
    .enumerate()
    .map(|(i, fact)| Change {
        sequence: i.to_string(),
        event_id: i.to_string(),
        at: OffsetDateTime::now_utc(),
        fact: Ok(fact),
    })
    .collect();
    assert_eq!(deliver(&changes, &NoBus, &rec, 400).await, None);
    let calls = rec.calls.lock().unwrap().clone();
    let needed: BTreeSet<&str> = calls
        .iter()
        .flat_map(|m| iam_actions(m).iter().copied())
        .collect();
    assert_eq!(needed, BTreeSet::from(["dynamodb:PutItem"]));

    let tpl = template();
    let statements = tpl["Resources"]["EventsFunction"]["Properties"]["Policies"][0]["Statement"]
        .as_sequence()
        .unwrap();
    let granted: Vec<(Vec<String>, String, String)> = statements
        .iter()
        .map(|st| {
            assert_eq!(st["Effect"].as_str(), Some("Allow"));
            let actions = st["Action"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_owned())
                .collect();
            let condition = serde_yaml::to_string(&st["Condition"]).unwrap();
            (actions, resource_text(&st["Resource"]), condition)
        })
        .collect();
    let put_item: Vec<&(Vec<String>, String, String)> = granted
        .iter()
        .filter(|(a, _, _)| {
            a.iter().any(|a| {
                a.starts_with("dynamodb:")
                    && !a.contains("Stream")
                    && a != "dynamodb:GetRecords"
                    && a != "dynamodb:GetShardIterator"
            })
        })
        .collect();
    assert_eq!(put_item.len(), 1, "{granted:?}");
    let (actions, resource, condition) = put_item[0];
    assert_eq!(actions, &["dynamodb:PutItem"]);
    assert_eq!(resource, "!GetAtt TokensTable.Arn");
    assert!(
        condition.contains("dynamodb:LeadingKeys") && condition.contains("A#*"),
        "audit items only: {condition}"
    );
    for (actions, resource, _) in &granted {
        for a in actions {
            match a.as_str() {
                "dynamodb:PutItem" => {}
                "dynamodb:DescribeStream" | "dynamodb:GetRecords" | "dynamodb:GetShardIterator" => {
                    assert_eq!(resource, "!GetAtt TokensTable.StreamArn")
                }
                // Names no resource.
                "dynamodb:ListStreams" => assert_eq!(resource, "*"),
                "events:PutEvents" => assert!(
                    resource.ends_with(":event-bus/${EventBusName}"),
                    "one bus: {resource}"
                ),
                "sqs:SendMessage" => assert_eq!(resource, "!GetAtt EventsDeadLetterQueue.Arn"),
                other => panic!("EventsFunction may not {other} ({resource})"),
            }
        }
    }
}

#[test]
fn the_console_function_may_read_nothing() {
    let tpl = template();
    let console = &tpl["Resources"]["ConsoleFunction"]["Properties"];
    assert!(console["CodeUri"].is_string(), "ConsoleFunction is defined");
    assert!(console["Policies"].is_null(), "the console reads nothing");
    assert!(console["Role"].is_null(), "the console reads nothing");
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

#[test]
fn no_function_environment_holds_key_material() {
    let tpl = template();
    let mut envs = vec![&tpl["Globals"]["Function"]["Environment"]["Variables"]];
    for (_, res) in tpl["Resources"].as_mapping().unwrap() {
        if res["Type"].as_str() == Some("AWS::Serverless::Function") {
            envs.push(&res["Properties"]["Environment"]["Variables"]);
        }
    }
    let mut seen = 0;
    for vars in envs {
        let Some(vars) = vars.as_mapping() else {
            continue;
        };
        for (k, v) in vars {
            let (k, v) = (k.as_str().unwrap(), resource_text(v));
            seen += 1;
            assert_ne!(
                k, "TOLLGATE_HASH_KEY",
                "the key itself in the configuration"
            );
            assert!(
                !v.contains("resolve:secretsmanager"),
                "{k} resolves a secret into the configuration: {v}"
            );
            assert!(!v.contains("{{resolve:"), "{k}: {v}");
        }
    }
    assert!(seen > 0);
    assert_eq!(
        resource_text(
            &tpl["Globals"]["Function"]["Environment"]["Variables"]["TOLLGATE_HASH_KEY_SECRET"]
        ),
        "!If CreateKeyring,!Ref KeyringSecret,!Ref HashKeySecretName",
        "the secret's ARN (the stack's own) or the name given, never its value"
    );
}
