//! The `delete` Lambda function: a thin adapter over the core crate.

#[tokio::main]
async fn main() -> Result<(), tollgate::lambda::Error> {
    tollgate::lambda::run(tollgate::Function::Delete).await
}
