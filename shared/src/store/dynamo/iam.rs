//! For the least-privilege test of `template.yaml` only.

/// A `Query` on the `byOwner` index, told apart from one on the table.
pub const QUERY_INDEX: &str = "dynamodb:Query@index/byOwner";

/// The IAM actions each `Store` method issues against the table, for the
/// least-privilege test of `template.yaml` (a transaction needs the actions
/// of its parts: create's `TransactWriteItems` is two `PutItem`s).
pub fn iam_actions(store_method: &str) -> &'static [&'static str] {
    match store_method {
        // A token pointing at an identity: its link put, the identity's
        // `linked` bumped, in the create's transaction.
        "put_new" => &["dynamodb:PutItem", "dynamodb:UpdateItem"],
        "idempotency" | "get" | "get_identity" => &["dynamodb:GetItem"],
        // The `externalId` claim, then its identity.
        "identity_by_external_id" => &["dynamodb:GetItem"],
        "get_many" => &["dynamodb:BatchGetItem"],
        // The index for the page, then the page's items in one batch.
        "list" | "list_identities" => &[QUERY_INDEX, "dynamodb:BatchGetItem"],
        // Read first (a resend after a lost answer finds nothing), then
        // the token and its link deleted.
        "delete" | "delete_by_secret" => &["dynamodb:GetItem", "dynamodb:DeleteItem"],
        // A change of identity moves the token's link in the same write.
        "replace" => &[
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:PutItem",
        ],
        "roll" | "touch" | "end_grace" | "revoke_capabilities" | "replace_identity" => {
            &["dynamodb:UpdateItem"]
        }
        "admit" | "admit_joint" => &["dynamodb:UpdateItem"],
        // The identity and its `externalId` claim, in one transaction.
        "put_identity" => &["dynamodb:PutItem"],
        // The identity and its links (one Query on the table), their
        // tokens (one batch), then the identity, claim and stale links.
        "delete_identity" => &[
            "dynamodb:Query",
            "dynamodb:BatchGetItem",
            "dynamodb:DeleteItem",
        ],
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
