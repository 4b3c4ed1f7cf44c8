//! For the least-privilege test of `template.yaml` only.

/// A `Query` on the `byOwner` index, told apart from one on the table.
pub const QUERY_INDEX: &str = "dynamodb:Query@index/byOwner";
/// A `Query` on the `byTarget` index (a token's or identity's history).
pub const QUERY_TARGET_INDEX: &str = "dynamodb:Query@index/byTarget";

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
        // One conditional delete; for a token of an identity, its link too.
        "delete_by_secret" => &["dynamodb:DeleteItem"],
        // The token (and its link) deleted at the version read, with its
        // audit record, in one transaction.
        "delete" => &["dynamodb:DeleteItem", "dynamodb:PutItem"],
        // A change of identity moves the token's link in the same write.
        "replace" => &[
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:PutItem",
        ],
        // With its audit record, in one transaction.
        "roll" | "replace_identity" => &["dynamodb:UpdateItem", "dynamodb:PutItem"],
        "touch" | "end_grace" | "revoke_capabilities" => &["dynamodb:UpdateItem"],
        "admit" | "admit_joint" => &["dynamodb:UpdateItem"],
        // The identity and its `externalId` claim, in one transaction.
        "put_identity" => &["dynamodb:PutItem"],
        // The identity and its links (one Query on the table), their
        // tokens (one batch), then the identity, claim and stale links.
        "delete_identity" => &[
            "dynamodb:Query",
            "dynamodb:BatchGetItem",
            "dynamodb:DeleteItem",
            "dynamodb:PutItem",
        ],
        // A record standing alone (the events function's token.expired).
        "record" => &["dynamodb:PutItem"],
        // An owner's trail on the table; a token's or identity's on the index.
        "audit" => &["dynamodb:Query", QUERY_TARGET_INDEX],
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
