//! SDK errors classified: what is worth a 503 and what is a bug.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use crate::store::StoreError;

/// Throttling, timeouts and connection failures are 503; the rest is a bug.
pub fn store_error<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(format!(
                "{}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&e)
            ))
        }
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("unknown");
            let transient = matches!(
                code,
                "ProvisionedThroughputExceededException"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "InternalServerError"
                    | "ServiceUnavailable"
                    | "TransactionInProgressException"
                    | "TransactionConflictException"
            );
            if transient {
                StoreError::Unavailable(code.to_owned())
            } else {
                StoreError::Internal(code.to_owned())
            }
        }
        _ => StoreError::Internal(format!(
            "{}",
            aws_sdk_dynamodb::error::DisplayErrorContext(&e)
        )),
    }
}

/// Whether DynamoDB refused the request for throughput, or because a
/// transaction (a lease renewal or release) was in flight on the item: it
/// did not apply and may be sent again.
pub fn did_not_apply<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    matches!(e, SdkError::ServiceError(se) if matches!(
        se.err().code(),
        Some(
            "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "TransactionConflictException"
        )
    ))
}
