//! The `authorize` Lambda function: a Lambda authorizer for the account
//! holder's own APIs, a thin adapter over the core crate.

#[tokio::main]
async fn main() -> Result<(), tollgate::lambda::Error> {
    tollgate::lambda::authorizer::run().await
}
