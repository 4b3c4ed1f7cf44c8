//! For the least-privilege test of `template.yaml` only.

/// The IAM actions each `Store` method issues against the table, for the
/// least-privilege test of `template.yaml` (a transaction needs the actions
/// of its parts: create's `TransactWriteItems` is two `PutItem`s).
pub fn iam_actions(store_method: &str) -> &'static [&'static str] {
    match store_method {
        "put_new" => &["dynamodb:PutItem"],
        "idempotency" | "get" => &["dynamodb:GetItem"],
        "list" => &["dynamodb:Query"],
        "delete" => &["dynamodb:DeleteItem"],
        "replace" | "admit" | "reclaim" | "renew" | "release" | "touch" => &["dynamodb:UpdateItem"],
        // The init-time connection warm-up.
        "warm_up" => &["dynamodb:GetItem"],
        _ => &[],
    }
}
