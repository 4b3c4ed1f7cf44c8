//! The server keyring from AWS Secrets Manager (`TOLLGATE_HASH_KEY_SECRET`):
//! read once at init, beside the DynamoDB warm-up, and again when a token
//! names a key id the function does not know yet (see `App::keyring_for`).

use crate::config::KeyringSource;
use crate::credentials::{Keyring, KeyringError};

pub struct SecretsManagerKeyring {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
}

impl SecretsManagerKeyring {
    pub fn new(sdk: &aws_config::SdkConfig, secret_id: impl Into<String>) -> Self {
        SecretsManagerKeyring {
            client: aws_sdk_secretsmanager::Client::new(sdk),
            secret_id: secret_id.into(),
        }
    }
}

#[async_trait::async_trait]
impl KeyringSource for SecretsManagerKeyring {
    async fn load(&self) -> Result<Keyring, KeyringError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| {
                // The error's code only: never a response body.
                let code = aws_sdk_secretsmanager::error::ProvideErrorMetadata::code(&e)
                    .unwrap_or("unreachable");
                KeyringError(format!(
                    "secret {:?} could not be read ({code})",
                    self.secret_id
                ))
            })?;
        let text = out
            .secret_string()
            .ok_or_else(|| KeyringError(format!("secret {:?} holds no string", self.secret_id)))?;
        Keyring::parse(text).map_err(|e| KeyringError(format!("secret {:?}: {e}", self.secret_id)))
    }
}
