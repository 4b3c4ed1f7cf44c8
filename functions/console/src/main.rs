//! The `console` Lambda function: the web console's files (`console/` at
//! the repository's root), embedded here at build time and served by the
//! core crate. Nothing to build in between: what is committed is served.

use tollgate::console::Asset;

macro_rules! assets {
    ($($name:literal),* $(,)?) => {
        &[$(Asset { name: $name, body: include_str!(concat!("../../../console/", $name)) }),*]
    };
}

const ASSETS: &[Asset] = assets![
    "index.html",
    "style.css",
    "app.js",
    "auth.js",
    "api.js",
    "ui.js",
    "limits.js",
    "tokens.js",
    "identities.js",
];

#[tokio::main]
async fn main() -> Result<(), tollgate::lambda::Error> {
    tollgate::lambda::console::run(ASSETS).await
}
