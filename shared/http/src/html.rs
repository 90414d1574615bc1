//! Pages for browsers (the consent result pages, the local start form). Everything inserted is
//! HTML-escaped; the only link is the configured return URL. The security headers every page
//! needs (Content-Security-Policy without inline script, `frame-ancestors 'none'`,
//! `X-Frame-Options`, `nosniff`, `no-referrer`, `no-store`) are set by the stack on every answer
//! ([`crate::stack`]), so no page can be served without them.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use url::Url;

/// Escape text for HTML element content and double-quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A complete page. The stack adds the headers that keep the callback URL (it carries the
/// state) out of referrers, caches and frames.
pub fn page(
    status: StatusCode,
    title: &str,
    message: &str,
    detail: Option<&str>,
    return_url: Option<&Url>,
) -> Response {
    let detail = detail
        .map(|d| format!("<p class=\"detail\">{}</p>", escape(d)))
        .unwrap_or_default();
    let link = return_url
        .map(|u| format!("<p><a href=\"{}\">Continue</a></p>", escape(u.as_str())))
        .unwrap_or_default();
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}}\
         .detail{{color:#555;font-size:.9em}}</style></head>\
         <body><h1>{t}</h1><p>{m}</p>{detail}{link}</body></html>\n",
        t = escape(title),
        m = escape(message),
    );
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
    }
}
