//! For the least-privilege test of `template.yaml` only.

/// A `Query` on the `byOwner` index, told apart from one on the table.
pub const QUERY_INDEX: &str = "dynamodb:Query@index/byOwner";

/// The IAM actions each `Store` method issues against the table, for the
/// least-privilege test of `template.yaml` (a transaction needs the actions
/// of its parts: create's `TransactWriteItems` is two `PutItem`s).
pub fn iam_actions(store_method: &str) -> &'static [&'static str] {
    match store_method {
        "put_new" => &["dynamodb:PutItem"],
        "idempotency" | "get" => &["dynamodb:GetItem"],
        "get_many" => &["dynamodb:BatchGetItem"],
        // The index for the page, then the page's tokens in one batch.
        "list" => &[QUERY_INDEX, "dynamodb:BatchGetItem"],
        "delete" | "delete_by_secret" => &["dynamodb:DeleteItem"],
        "replace" | "roll" | "touch" | "end_grace" | "revoke_capabilities" => {
            &["dynamodb:UpdateItem"]
        }
        "admit" => &["dynamodb:UpdateItem"],
        // The lease's own item read, then a transaction of the token's
        // update and the lease item's put.
        "move_lease" => &[
            "dynamodb:GetItem",
            "dynamodb:UpdateItem",
            "dynamodb:PutItem",
        ],
        // The init-time connection warm-up.
        "warm_up" => &["dynamodb:GetItem"],
        _ => &[],
    }
}
