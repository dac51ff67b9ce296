//! The text of AWS SDK errors, for logs and typed errors.

/// The full text of an SDK error: its `Display` names only the outer layer ("service error").
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}
