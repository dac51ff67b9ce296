//! The admin console: one page, its script and style, and the chart library, built into the binary
//! so `tally serve` and the api function serve it with no CDN and nothing fetched at page load.
//!
//! The page is public; the numbers it shows come from `/v1`, which asks for the token or JWT. With
//! [`SignIn`] set, the console signs an admin in with an OpenID Connect provider itself.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;

/// `(file name, content type, bytes)`: the page's own files, then the pinned npm package's build
/// (`console/package-lock.json`; build.rs says how to install it when missing).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../console/app.css"),
    ),
    (
        "uPlot.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/node_modules/uplot/dist/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../console/node_modules/uplot/dist/uPlot.min.css"),
    ),
];
const INDEX: &[u8] = include_bytes!("../../console/index.html");

/// How the console signs an admin in: the authorization-code flow with PKCE against an OpenID
/// Connect provider (a Cognito user pool's hosted UI, for example). The token it gets is sent to
/// `/v1` as a bearer token, which API Gateway's JWT authorizer checks.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SignIn {
    pub authorize_url: String,
    pub token_url: String,
    pub client_id: String,
    /// Space-separated scopes asked for; `openid` when not set.
    pub scope: String,
}

impl SignIn {
    /// The settings name the provider's two endpoints and the console's client id: all or none.
    /// Endpoints are https (http only on this machine, for trials and tests). Errors name the setting.
    pub fn from_settings(
        authorize_url: Option<String>,
        token_url: Option<String>,
        client_id: Option<String>,
        scope: Option<String>,
        names: [&str; 3],
    ) -> Result<Option<SignIn>, (String, String)> {
        let given = [authorize_url, token_url, client_id];
        if given.iter().all(Option::is_none) {
            return Ok(None);
        }
        for (value, name) in given.iter().zip(names) {
            if value.is_none() {
                return Err((
                    name.to_string(),
                    format!("console sign-in needs {} together", names.join(", ")),
                ));
            }
        }
        let [Some(authorize_url), Some(token_url), Some(client_id)] = given else {
            unreachable!("checked above")
        };
        for (url, name) in [(&authorize_url, names[0]), (&token_url, names[1])] {
            let local = [
                "http://127.0.0.1:",
                "http://localhost:",
                "http://127.0.0.1/",
                "http://localhost/",
            ];
            if !(url.starts_with("https://") || local.iter().any(|p| url.starts_with(p)))
                || url.contains(char::is_whitespace)
            {
                return Err((
                    name.to_string(),
                    format!("{url:?} is not an https URL of the provider's endpoint"),
                ));
            }
        }
        Ok(Some(SignIn {
            authorize_url,
            token_url,
            client_id,
            scope: scope.unwrap_or_else(|| "openid".into()),
        }))
    }

    /// `scheme://host[:port]` of the token endpoint: the page may call it (CSP `connect-src`).
    fn token_origin(&self) -> &str {
        let rest = self.token_url.split_once("://").map_or("", |(_, r)| r);
        let host_end = rest.find('/').unwrap_or(rest.len());
        &self.token_url[..self.token_url.len() - rest.len() + host_end]
    }
}

pub(super) fn routes<S: Clone + Send + Sync + 'static>(sign_in: Option<SignIn>) -> Router<S> {
    // Scripts and styles from this origin only; the API is this origin, the token endpoint the other.
    let connect = sign_in
        .as_ref()
        .map_or(String::new(), |s| format!(" {}", s.token_origin()));
    let csp = format!(
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
         connect-src 'self'{connect}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    );
    let csp = HeaderValue::from_str(&csp).expect("the policy is ASCII without control characters");
    let config =
        serde_json::to_vec(&serde_json::json!({ "sign_in": sign_in })).expect("serialises");
    let page_csp = csp.clone();
    Router::new()
        .route(
            "/",
            get(move || async move { page("text/html; charset=utf-8", INDEX.into(), page_csp) }),
        )
        .route(
            "/console/{file}",
            get(move |Path(file): Path<String>| async move {
                if file == "config.json" {
                    return page("application/json", config.into(), csp);
                }
                match ASSETS.iter().find(|(name, _, _)| *name == file) {
                    Some((_, content_type, bytes)) => page(content_type, (*bytes).into(), csp),
                    None => (StatusCode::NOT_FOUND, "no such console file").into_response(),
                }
            }),
        )
}

fn page(content_type: &'static str, body: bytes::Bytes, csp: HeaderValue) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The other security headers are the router's, on every response.
    h.insert(header::CONTENT_SECURITY_POLICY, csp);
    // Assets change with the binary; revalidating keeps a new deploy's page and script together.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

#[cfg(test)]
mod tests {
    use super::SignIn;

    const NAMES: [&str; 3] = ["A", "T", "C"];

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn sign_in_settings_are_all_or_none_and_https() {
        assert_eq!(
            SignIn::from_settings(None, None, None, None, NAMES),
            Ok(None)
        );
        let e = SignIn::from_settings(s("https://a/x"), None, s("c"), None, NAMES).unwrap_err();
        assert_eq!(e.0, "T");
        let e = SignIn::from_settings(
            s("http://idp.example.com/x"),
            s("https://t/y"),
            s("c"),
            None,
            NAMES,
        )
        .unwrap_err();
        assert_eq!(e.0, "A");
        let ok = SignIn::from_settings(
            s("https://auth.example.com/oauth2/authorize"),
            s("https://auth.example.com:8443/oauth2/token"),
            s("client"),
            None,
            NAMES,
        )
        .unwrap()
        .unwrap();
        assert_eq!(ok.scope, "openid");
        assert_eq!(ok.token_origin(), "https://auth.example.com:8443");
    }
}
