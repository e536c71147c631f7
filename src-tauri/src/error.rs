//! The one error type the webview sees: `{code, message}`, with a message meant for people.
//!
//! Only messages written for users cross over; anything else (SQL text, file errors) becomes
//! "Something went wrong", so no query, path, key or record detail reaches the webview.

use chartroom_core::{CoreError, Denial};
use serde::Serialize;
use ts_rs::TS;

/// `code` is stable (the window branches on it): `forbidden` (the role may not),
/// `restricted` (the chart is restricted; break the glass if your role may),
/// `session_expired`, `auth_failed`, `locked_out`, `invalid_input`, `not_found`, …
#[derive(Debug, Serialize, PartialEq, Eq, TS)]
pub struct AppError {
    pub code: &'static str,
    pub message: String,
    /// The patients a registration may duplicate (`possible_duplicate` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub candidates: Option<Vec<chartroom_core::DuplicateCandidate>>,
    /// Each field's problem, to show beside it (`invalid_input` from a form), or the
    /// questions about values far from the last ones (`check_values`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub fields: Option<Vec<chartroom_core::FieldError>>,
}

impl AppError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        AppError {
            code,
            message: message.into(),
            candidates: None,
            fields: None,
        }
    }
}

impl From<CoreError> for AppError {
    fn from(e: CoreError) -> Self {
        let code = match &e {
            CoreError::Forbidden(Denial::Restricted { .. }) => "restricted",
            _ => e.code(),
        };
        match code {
            // These carry internal detail (SQLite or OS wording) not meant for the screen.
            "internal" | "io" => AppError::new(
                code,
                "Something went wrong. Nothing was changed; please try again.",
            ),
            _ => AppError {
                candidates: e.duplicate_candidates().map(<[_]>::to_vec),
                fields: e.field_errors().map(<[_]>::to_vec),
                ..AppError::new(code, e.to_string())
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_detail_never_reaches_the_webview() {
        let sql = CoreError::Vault(chartroom_core::VaultError::Sqlite(
            "no such table: secret_things".into(),
        ));
        let e = AppError::from(sql);
        assert_eq!(
            serde_json::to_value(&e).expect("json"),
            serde_json::json!({
                "code": "internal",
                "message": "Something went wrong. Nothing was changed; please try again."
            })
        );
    }

    #[test]
    fn user_facing_messages_pass_through() {
        let e = AppError::from(CoreError::InvalidInput("The password is too short.".into()));
        assert_eq!(
            e,
            AppError::new("invalid_input", "The password is too short.")
        );
    }
}
