//! The `events` Lambda function: the table's stream to EventBridge, a thin
//! adapter over the core crate.

#[tokio::main]
async fn main() -> Result<(), tollgate::lambda::Error> {
    tollgate::lambda::events::run().await
}
